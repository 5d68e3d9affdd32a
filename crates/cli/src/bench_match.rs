//! Placeholder until the matcher benchmark lands.
