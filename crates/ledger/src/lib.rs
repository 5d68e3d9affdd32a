//! AICPW placeholder
