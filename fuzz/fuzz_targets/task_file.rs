//! Parsing an untrusted task file never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = aicpw_types::spec::TaskFile::parse(text);
    }
    let _ = aicpw_types::bundle::unpack(data);
});
