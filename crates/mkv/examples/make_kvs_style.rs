//! Writes `samples/kvs_style_h264.mkv`: an ffmpeg H.264+AAC file re-laid out the way a KVS
//! producer sends it. The conversion lives in `tests/mkv/kvs_style.rs` so that the golden test
//! can check the committed file against it.
//!
//! `cargo run -p openkvs-mkv --example make_kvs_style -- samples/ffmpeg_h264_aac.mkv samples/kvs_style_h264.mkv`
#![allow(clippy::print_stdout)]

#[path = "../tests/mkv/kvs_style.rs"]
mod kvs_style;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(src), Some(dst)) = (args.next(), args.next()) else {
        return Err("usage: make_kvs_style SRC.mkv DST.mkv".into());
    };
    let out = kvs_style::convert(&std::fs::read(src)?)?;
    std::fs::write(&dst, &out)?;
    println!("wrote {dst}: {} bytes", out.len());
    Ok(())
}
