//! placeholder
pub mod error;
pub mod extensions;
mod mux;
pub mod proto;
pub mod stream;
pub mod transport;

pub use error::WispError;
pub use mux::{ClientMux, MultiplexorActorFuture, MuxOptions, MuxResult};
pub use stream::{MuxStream, MuxStreamAsyncRW, MuxStreamRead, MuxStreamTokioIo, MuxStreamWrite, StreamEnd};
