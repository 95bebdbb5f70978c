#![allow(clippy::print_stdout)]
use openkvs_bench::camera;
fn main() {
    let mut p = mkv::Parser::builder().build();
    let mut data = camera::header();
    data.extend(camera::cluster_start(1000));
    data.extend(camera::frame(0, true, &[1; 100]));
    data.extend(camera::end_of_fragment());
    p.push(&data);
    while let Ok(Some(e)) = p.poll() {
        println!("{e:?}");
    }
    println!("--- ingest");
    let mut s = ingest::Session::new(ingest::SessionConfig::new(
        "arn:aws:kinesisvideo:us-east-1:1:stream/a/1",
    ));
    s.push(&data, 5);
    while let Some(o) = s.poll() {
        println!("{o:?}");
    }
}
