//! How the process's allocator hands memory back to the kernel.
//!
//! glibc serves allocations of 128 KiB and more (a dense histogram is 188
//! KiB) from mappings of their own, but once such a block is freed it raises
//! that threshold to the block's size: from then on the coordinator's
//! per-interval histograms come from the heap, whose freed space stays
//! resident. A `stampede bench` process (coordinator and agent in one) grew
//! from 16 to 23 MiB over a run that way. Setting the thresholds turns the
//! adjustment off, so large blocks go back to the kernel when freed: 20 MiB
//! at peak, flat after the first intervals (`docs/performance.md`).

/// Fixes glibc's mmap and trim thresholds at 128 KiB. Call first thing in
/// `main`, before any other thread starts. Elsewhere (musl, other systems)
/// it does nothing.
pub fn return_large_blocks_to_the_kernel() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const THRESHOLD: libc::c_int = 128 * 1024;
        // SAFETY: `mallopt` only sets the allocator's parameters; it is
        // called before any other thread exists, as glibc asks.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, THRESHOLD);
        }
    }
}
