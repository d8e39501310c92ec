//! Tests: running code the way a worker thread runs its connections.

use std::future::Future;

/// Runs `test` on a current-thread runtime inside a `LocalSet`, as each
/// worker thread runs its tasks (so `spawn_local` and `Rc` state work).
pub(crate) fn on_worker_runtime<F: Future>(test: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tokio::task::LocalSet::new().block_on(&rt, test)
}
