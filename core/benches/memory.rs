//! Memory per active entity: heap bytes the engine holds per entity with one write in its
//! lane, measured with a counting allocator. Prints the figure; it is a measurement, not
//! a pass/fail test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use writelane_core::{Command, Engine, Input, Policy, SubmitOptions};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap bytes per entity after `entities` writes, one per entity: either finished (the
/// entity keeps its committed token, counters and budget) or with the write in flight.
fn measure(entities: usize, name_len: usize, finished: bool) -> f64 {
    let mut e = Engine::new(Policy::default(), 1);
    let before = LIVE.load(Ordering::Relaxed);
    let token = "c1:sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let drive = |e: &mut Engine| {
        while let Some(cmd) = e.poll_command() {
            match cmd {
                Command::Read { op } => e
                    .handle(
                        0,
                        Input::ReadDone {
                            op,
                            token: Some(token.into()),
                        },
                    )
                    .unwrap(),
                Command::Write { op, .. } if finished => e
                    .handle(
                        0,
                        Input::WriteDone {
                            op,
                            token: Some(token.into()),
                        },
                    )
                    .unwrap(),
                _ => {}
            }
        }
        while e.poll_event().is_some() {}
    };
    for i in 0..entities {
        let name = format!("{i:0>width$}", width = name_len);
        e.submit(&name, 0, SubmitOptions::default()).unwrap();
        // Finished writes are driven one at a time, as a long-running host would see them;
        // in-flight writes all stay open together.
        if finished {
            drive(&mut e);
        }
    }
    drive(&mut e);
    let after = LIVE.load(Ordering::Relaxed);
    std::hint::black_box(&e);
    (after - before) as f64 / entities as f64
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    for (n, name_len) in [(10_000, 40), (100_000, 40)] {
        println!(
            "memory per entity ({n} entities, {name_len}-byte names, 74-byte tokens): \
             {:.0} bytes once its write committed, {:.0} bytes with a write in flight",
            measure(n, name_len, true),
            measure(n, name_len, false),
        );
    }
}
