//! Adding and reading files must stream: memory stays near one chunk whatever the file size.
//! This binary counts heap bytes with its own global allocator, so it holds a single test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

use aicpw_store::{AddOptions, Store};

struct CountingAllocator;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn record_growth(size: usize) {
    let now = CURRENT.fetch_add(size, Ordering::SeqCst) + size;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

// Counting needs a global allocator, which the language only offers as an unsafe trait;
// every call is forwarded unchanged to the system allocator.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record_growth(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            record_growth(new_size - layout.size());
        } else {
            CURRENT.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
        }
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Heap growth above the level at the start of `work`.
fn peak_growth(work: impl FnOnce()) -> usize {
    let baseline = CURRENT.load(Ordering::SeqCst);
    PEAK.store(baseline, Ordering::SeqCst);
    work();
    PEAK.load(Ordering::SeqCst) - baseline
}

/// 64 MiB of bytes that are never all in memory at once (no two chunks alike).
fn large_input() -> impl Read {
    let length: u64 = 64 << 20;
    (0..length / 8).flat_map(|word| word.to_le_bytes()).collect_bytes()
}

trait CollectBytes {
    fn collect_bytes(self) -> IteratorReader<Self>
    where
        Self: Sized;
}

impl<I: Iterator<Item = u8>> CollectBytes for I {
    fn collect_bytes(self) -> IteratorReader<Self> {
        IteratorReader(self)
    }
}

struct IteratorReader<I>(I);

impl<I: Iterator<Item = u8>> Read for IteratorReader<I> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let mut count = 0;
        for slot in out.iter_mut() {
            match self.0.next() {
                Some(byte) => *slot = byte,
                None => break,
            }
            count += 1;
        }
        Ok(count)
    }
}

#[test]
fn adding_and_reading_a_64_mib_file_stays_within_a_few_chunks_of_memory() {
    // One chunk is 256 KiB; the builder may also hold the encoded leaf and the link lists.
    let bound = 4 << 20;
    let directory = tempfile::tempdir().expect("tempdir");
    let store = Store::open(directory.path()).expect("opens");
    let mut cid = None;
    let adding = peak_growth(|| {
        cid = Some(store.add_reader(large_input(), &AddOptions::default()).expect("adds"))
    });
    assert!(adding < bound, "adding grew the heap by {adding} bytes");
    let cid = cid.expect("added");
    let mut written = 0;
    let reading =
        peak_growth(|| written = store.read_to_writer(&cid, std::io::sink()).expect("reads"));
    assert_eq!(written, 64 << 20);
    assert!(reading < bound, "reading grew the heap by {reading} bytes");
}
