//! Model-serving endpoints (OpenAI-compatible completions): reading
//! streamed answers ([`sse`], [`observer`]) and what they measure
//! ([`figures`]: TTFT, ITL, TPOT, tokens/s, goodput).

pub mod figures;
pub mod observer;
pub mod sse;

pub use figures::{GoodputSlo, LlmFigures, RequestMetrics};
pub use observer::{LlmFault, LlmObserver};
