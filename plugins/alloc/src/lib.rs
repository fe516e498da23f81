//! A global allocator for Rust plugins: size-class free lists in front of wasi-libc's malloc.
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: weir_plugin_alloc::SizeClasses = weir_plugin_alloc::SizeClasses::new();
//! ```
//!
//! Why: a plugin that builds values per event (a `serde_json::Value` tree: a string per key and
//! value, a node per map) allocates and frees dozens of small blocks per event. wasm32-wasip2's
//! default allocator is wasi-libc's dlmalloc, whose every call walks bins in Wasm code, where each
//! function entry and loop iteration also pays the host's deadline check; glibc's malloc has a
//! per-thread cache of freed blocks for exactly this pattern, dlmalloc has none. This is that
//! cache: a freed block of up to 16 KiB goes on a list for its size class (16, 32, ..., 16384
//! bytes) and the next request of that class takes it back, in a few instructions and no loop.
//! Measured with `cargo bench -p weir --bench plugins`, it makes the `redact` plugin ~20% faster
//! (docs/performance.md, "Wasm plugins").
//!
//! What it costs: a block is rounded up to its class (at most twice the size asked for), and up
//! to [`RETAINED_PER_CLASS`] bytes of free blocks per class stay on their list instead of going
//! back to malloc (at most 11 MiB in all, against the instance's `memory_mb`; Wasm memory never
//! shrinks anyway). Larger or over-aligned requests go straight to malloc.
//!
//! Single-threaded by design: a wasm32-wasip2 component runs on one thread, so the lists need no
//! lock. Building for a target with threads is refused at compile time.

#[cfg(all(target_family = "wasm", target_feature = "atomics"))]
compile_error!("weir-plugin-alloc keeps unlocked free lists: it is for single-threaded Wasm only");

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// Size classes: 16 << 0 ..= 16 << 10 (16 bytes to 16 KiB).
const CLASSES: usize = 11;
const MIN_BLOCK: usize = 16;
/// The largest block served from the lists; larger requests go to malloc.
pub const MAX_BLOCK: usize = MIN_BLOCK << (CLASSES - 1);
/// Every block is this aligned (malloc is asked for it), so any request up to it can share it.
const ALIGN: usize = 16;
/// Free bytes kept per class before frees go back to malloc: enough for a batch of 256 events'
/// worth of payloads in one class, small beside a 64 MiB instance.
pub const RETAINED_PER_CLASS: usize = 1 << 20;

pub struct SizeClasses {
    lists: UnsafeCell<Lists>,
}

struct Lists {
    /// The first free block of each class; each free block's first word points to the next.
    heads: [*mut u8; CLASSES],
    /// Bytes on each list.
    retained: [usize; CLASSES],
}

// SAFETY: only on single-threaded Wasm (the compile_error above refuses threaded Wasm), where no
// two calls can ever overlap. Elsewhere (the crate's own tests) it is not `Sync`, so it cannot be
// a process's global allocator there.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
unsafe impl Sync for SizeClasses {}

impl SizeClasses {
    pub const fn new() -> Self {
        SizeClasses {
            lists: UnsafeCell::new(Lists {
                heads: [ptr::null_mut(); CLASSES],
                retained: [0; CLASSES],
            }),
        }
    }

    /// The class of a request, or None for one malloc serves directly.
    #[inline(always)]
    fn class(layout: Layout) -> Option<usize> {
        if layout.size() > MAX_BLOCK || layout.align() > ALIGN {
            return None;
        }
        let size = layout.size().max(MIN_BLOCK);
        // 16 -> 0, 17..=32 -> 1, ..., 8193..=16384 -> 10.
        Some((size.next_power_of_two().trailing_zeros() - MIN_BLOCK.trailing_zeros()) as usize)
    }

    /// What a block of `class` is allocated from malloc (and returned to it) as.
    #[inline(always)]
    fn block(class: usize) -> Layout {
        // SAFETY: a power of two no larger than MAX_BLOCK, and ALIGN is a power of two.
        unsafe { Layout::from_size_align_unchecked(MIN_BLOCK << class, ALIGN) }
    }
}

impl Default for SizeClasses {
    fn default() -> Self {
        Self::new()
    }
}

unsafe impl GlobalAlloc for SizeClasses {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = Self::class(layout) else {
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: single-threaded (see `Sync`), and no call below re-enters this allocator
        // while `lists` is borrowed.
        let lists = unsafe { &mut *self.lists.get() };
        let head = lists.heads[c];
        if head.is_null() {
            return unsafe { System.alloc(Self::block(c)) };
        }
        // SAFETY: a block on a list is a free block of this class whose first word holds the
        // next free block (aligned to ALIGN, so the read is aligned).
        lists.heads[c] = unsafe { *(head as *mut *mut u8) };
        lists.retained[c] -= MIN_BLOCK << c;
        head
    }

    #[inline]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(c) = Self::class(layout) else {
            return unsafe { System.dealloc(block, layout) };
        };
        // SAFETY: as in `alloc`.
        let lists = unsafe { &mut *self.lists.get() };
        if lists.retained[c] >= RETAINED_PER_CLASS {
            return unsafe { System.dealloc(block, Self::block(c)) };
        }
        // SAFETY: `block` came from `alloc` with a layout of this class, so it is at least
        // MIN_BLOCK bytes and ALIGN-aligned, and it is ours again.
        unsafe { *(block as *mut *mut u8) = lists.heads[c] };
        lists.heads[c] = block;
        lists.retained[c] += MIN_BLOCK << c;
    }

    #[inline]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `layout.align()` is a valid alignment, and GlobalAlloc's contract says
        // `new_size` rounded up to it does not overflow.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (Self::class(layout), Self::class(new)) {
            // The block already has room for its whole class: Vec and String growth mostly
            // stays here.
            (Some(a), Some(b)) if a == b => block,
            // Both large: malloc may grow in place.
            (None, None) => unsafe { System.realloc(block, layout, new_size) },
            _ => {
                let moved = unsafe { self.alloc(new) };
                if !moved.is_null() {
                    unsafe {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                }
                moved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn classes_cover_sizes_up_to_16_kib_and_alignments_up_to_16() {
        assert_eq!(SizeClasses::class(layout(0, 1)), Some(0));
        assert_eq!(SizeClasses::class(layout(16, 8)), Some(0));
        assert_eq!(SizeClasses::class(layout(17, 1)), Some(1));
        assert_eq!(SizeClasses::class(layout(400, 1)), Some(5));
        assert_eq!(SizeClasses::class(layout(512, 1)), Some(5));
        assert_eq!(SizeClasses::class(layout(MAX_BLOCK, 16)), Some(CLASSES - 1));
        assert_eq!(SizeClasses::class(layout(MAX_BLOCK + 1, 1)), None);
        assert_eq!(SizeClasses::class(layout(64, 32)), None);
    }

    #[test]
    fn a_freed_block_serves_the_next_request_of_its_class() {
        let a = SizeClasses::new();
        unsafe {
            let p = a.alloc(layout(40, 8));
            a.dealloc(p, layout(40, 8));
            assert_eq!(
                a.alloc(layout(64, 1)),
                p,
                "same class (33..=64 bytes): same block"
            );
            assert_ne!(a.alloc(layout(40, 8)), p, "the list is empty again");
        }
    }

    #[test]
    fn frees_past_the_retention_limit_go_back_to_malloc() {
        let a = SizeClasses::new();
        let l = layout(4096, 8);
        let n = 2 * RETAINED_PER_CLASS / 4096;
        unsafe {
            let blocks: Vec<*mut u8> = (0..n).map(|_| a.alloc(l)).collect();
            for &b in &blocks {
                a.dealloc(b, l);
            }
            let lists = &*a.lists.get();
            assert_eq!(lists.retained[8], RETAINED_PER_CLASS);
            let mut on_list = 0;
            let mut next = lists.heads[8];
            while !next.is_null() {
                on_list += 1;
                next = *(next as *mut *mut u8);
            }
            assert_eq!(on_list, RETAINED_PER_CLASS / 4096);
            // Taking them back empties the list and its count.
            for _ in 0..on_list {
                a.alloc(l);
            }
            let lists = &*a.lists.get();
            assert!(lists.heads[8].is_null());
            assert_eq!(lists.retained[8], 0);
        }
    }

    #[test]
    fn realloc_keeps_the_contents_across_classes_and_into_and_out_of_malloc() {
        let a = SizeClasses::new();
        unsafe {
            let mut size = 3;
            let mut p = a.alloc(layout(size, 1));
            ptr::write_bytes(p, 0xAB, size);
            // Grow through every class and past the largest, then shrink back down.
            for new in [
                10, 16, 17, 100, 1000, 16384, 16385, 100_000, 20_000, 5000, 7,
            ] {
                p = a.realloc(p, layout(size, 1), new);
                assert!(!p.is_null());
                let kept = size.min(new);
                assert!(
                    (0..kept).all(|i| *p.add(i) == 0xAB),
                    "{size} -> {new} lost bytes"
                );
                ptr::write_bytes(p, 0xAB, new);
                size = new;
            }
            a.dealloc(p, layout(size, 1));
        }
    }

    /// Many live blocks of mixed sizes and alignments, each filled with its own byte and freed in
    /// a shuffled order: a block handed out twice, or one too small for its request, shows up
    /// as a clobbered byte.
    #[test]
    fn live_blocks_never_overlap() {
        let a = SizeClasses::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        unsafe {
            for round in 0..20_000u32 {
                if live.len() < 500 && next() % 3 != 0 {
                    let size = match next() % 10 {
                        0 => (next() % 40_000) as usize,
                        _ => (next() % 600) as usize,
                    };
                    let l = layout(size, 1 << (next() % 7));
                    let p = a.alloc(l);
                    assert!(!p.is_null() && (p as usize).is_multiple_of(l.align()));
                    let fill = round as u8;
                    ptr::write_bytes(p, fill, size);
                    live.push((p, l, fill));
                } else if !live.is_empty() {
                    let (p, l, fill) = live.swap_remove((next() as usize) % live.len());
                    assert!((0..l.size()).all(|i| *p.add(i) == fill), "block clobbered");
                    a.dealloc(p, l);
                }
            }
            for (p, l, fill) in live {
                assert!((0..l.size()).all(|i| *p.add(i) == fill), "block clobbered");
                a.dealloc(p, l);
            }
        }
    }
}
