//! The allocator: musl's by default, mimalloc for the busy server roles.
//!
//! The static musl build's malloc takes one lock for all threads, which a
//! server that allocates per request feels; mimalloc does not, but each
//! process using it holds a few MB more. Workstation tools run many small
//! processes inside a 64 MB container (a dozen parallel `tcp --probe`s), so
//! only the roles that ask for it (`use_mimalloc`, before their threads
//! start) get mimalloc; every block is freed by the allocator that made it.

use libmimalloc_sys as mi;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

static MIMALLOC: AtomicBool = AtomicBool::new(false);

/// Allocate new blocks with mimalloc from now on.
pub fn use_mimalloc() {
    MIMALLOC.store(true, Ordering::SeqCst);
}

pub struct Switch;

/// mimalloc's natural alignment: blocks asking no more take its fast path
/// (as the `mimalloc` crate decides).
const MI_MAX_ALIGN: usize = 16;

fn natural(l: &Layout) -> bool {
    l.align() <= MI_MAX_ALIGN && l.align() <= l.size()
}

fn ours(p: *mut u8) -> bool {
    // Whether mimalloc owns the block (a lookup in its segment map).
    unsafe { mi::mi_is_in_heap_region(p as *const _) }
}

unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if MIMALLOC.load(Ordering::Relaxed) {
            if natural(&l) {
                mi::mi_malloc(l.size()) as *mut u8
            } else {
                mi::mi_malloc_aligned(l.size(), l.align()) as *mut u8
            }
        } else {
            System.alloc(l)
        }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if MIMALLOC.load(Ordering::Relaxed) {
            if natural(&l) {
                mi::mi_zalloc(l.size()) as *mut u8
            } else {
                mi::mi_zalloc_aligned(l.size(), l.align()) as *mut u8
            }
        } else {
            System.alloc_zeroed(l)
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if MIMALLOC.load(Ordering::Relaxed) && ours(p) {
            mi::mi_free(p as *mut _)
        } else {
            System.dealloc(p, l)
        }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if MIMALLOC.load(Ordering::Relaxed) && ours(p) {
            if l.align() <= MI_MAX_ALIGN && l.align() <= new {
                mi::mi_realloc(p as *mut _, new) as *mut u8
            } else {
                mi::mi_realloc_aligned(p as *mut _, new, l.align()) as *mut u8
            }
        } else {
            System.realloc(p, l, new)
        }
    }
}
