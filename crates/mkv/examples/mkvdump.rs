//! Prints the parser's events for an MKV file, one line each (the golden-dump format).
//!
//! `cargo run -p openkvs-mkv --example mkvdump -- FILE [CHUNK_SIZE]`
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: mkvdump FILE [CHUNK_SIZE]")?;
    let chunk: usize = args.next().map_or(Ok(4096), |s| s.parse())?;
    let data = std::fs::read(&path)?;
    let mut p = openkvs_mkv::Parser::default();
    let out = std::io::stdout();
    let mut out = out.lock();
    for piece in data.chunks(chunk.max(1)) {
        p.push(piece);
        while let Some(ev) = p.poll()? {
            writeln!(out, "{ev}")?;
        }
    }
    p.finish()?;
    while let Some(ev) = p.poll()? {
        writeln!(out, "{ev}")?;
    }
    Ok(())
}
