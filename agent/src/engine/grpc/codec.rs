//! The bytes codec for tonic's generic client: the request message was
//! encoded once by the coordinator and goes out as is; the response message
//! is only measured (its length), never decoded or kept.

use bytes::{Buf, BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Sends pre-encoded messages, reads responses as their length in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawCodec;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawEncoder;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LengthDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = u64;
    type Encoder = RawEncoder;
    type Decoder = LengthDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        LengthDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for LengthDecoder {
    type Item = u64;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<u64>, Status> {
        let len = src.remaining();
        src.advance(len);
        Ok(Some(len as u64))
    }
}
