//! `stsd` (ISO/IEC 14496-12 section 8.5.2) with one sample entry: `avc1`/`hvc1` (ISO/IEC
//! 14496-15 sections 5.4.2 and 8.4.1), `mp4a` + `esds` (ISO/IEC 14496-14 section 5.6), or
//! `alaw`/`ulaw` (QuickTime sound sample descriptions, which ffmpeg and Apple read in MP4).

use crate::codec::{AudioCodec, TrackConfig, TrackKind, VideoCodec};
use crate::write::Writer;

pub(crate) fn write_stsd(w: &mut Writer, cfg: &TrackConfig) {
    w.full(b"stsd", 0, 0, |w| {
        w.u32(1); // entry_count
        match &cfg.kind {
            TrackKind::Video {
                codec,
                width,
                height,
            } => {
                let (fourcc, config_box, config): (&[u8; 4], &[u8; 4], &[u8]) = match codec {
                    VideoCodec::Avc { avcc } => (b"avc1", b"avcC", avcc),
                    VideoCodec::Hevc { hvcc } => (b"hvc1", b"hvcC", hvcc),
                };
                w.boxed(fourcc, |w| {
                    write_visual_sample_entry(w, *width, *height);
                    w.boxed(config_box, |w| w.bytes(config));
                });
            }
            TrackKind::Audio {
                codec,
                sample_rate,
                channels,
            } => {
                let fourcc: &[u8; 4] = match codec {
                    AudioCodec::Aac { .. } => b"mp4a",
                    AudioCodec::G711 { alaw: true } => b"alaw",
                    AudioCodec::G711 { alaw: false } => b"ulaw",
                };
                w.boxed(fourcc, |w| {
                    write_audio_sample_entry(w, *channels, *sample_rate);
                    if let AudioCodec::Aac { asc } = codec {
                        write_esds(w, cfg.id, asc);
                    }
                });
            }
        }
    });
}

/// `VisualSampleEntry` fields (ISO/IEC 14496-12 section 12.1.3).
fn write_visual_sample_entry(w: &mut Writer, width: u16, height: u16) {
    w.zeros(6); // reserved
    w.u16(1); // data_reference_index
    w.zeros(2 + 2 + 12); // pre_defined, reserved, pre_defined[3]
    w.u16(width);
    w.u16(height);
    w.u32(0x0048_0000); // horizresolution 72 dpi
    w.u32(0x0048_0000); // vertresolution 72 dpi
    w.u32(0); // reserved
    w.u16(1); // frame_count
    w.zeros(32); // compressorname: empty Pascal string
    w.u16(0x0018); // depth: colour, no alpha
    w.u16(0xffff); // pre_defined = -1
}

/// `AudioSampleEntry` fields (ISO/IEC 14496-12 section 12.2.3), version 0.
fn write_audio_sample_entry(w: &mut Writer, channels: u16, sample_rate: u32) {
    w.zeros(6); // reserved
    w.u16(1); // data_reference_index
    w.zeros(8); // reserved[2]
    w.u16(channels);
    w.u16(16); // samplesize
    w.u16(0); // pre_defined
    w.u16(0); // reserved
    // 16.16 fixed point; rates above 65535 Hz do not fit, mdhd's timescale holds them.
    w.u32(if sample_rate <= 0xffff {
        sample_rate << 16
    } else {
        0
    });
}

/// An MPEG-4 descriptor (ISO/IEC 14496-1 section 8.3.3): tag, size as 7-bit groups with a
/// continuation bit, body.
fn descriptor(w: &mut Writer, tag: u8, body: &[u8]) {
    w.u8(tag);
    let len = body.len();
    let mut groups = vec![(len & 0x7f) as u8];
    let mut rest = len >> 7;
    while rest > 0 {
        groups.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    for g in groups.iter().rev() {
        w.u8(*g);
    }
    w.bytes(body);
}

/// `esds` (ISO/IEC 14496-14 section 5.6.1): ES_Descriptor { DecoderConfigDescriptor {
/// DecoderSpecificInfo = AudioSpecificConfig }, SLConfigDescriptor }.
fn write_esds(w: &mut Writer, track_id: u32, asc: &[u8]) {
    let mut dsi = Writer::new();
    descriptor(&mut dsi, 0x05, asc);
    let mut dcd = Writer::new();
    dcd.u8(0x40); // objectTypeIndication: Audio ISO/IEC 14496-3
    dcd.u8(0x15); // streamType 5 (audio) << 2 | upStream 0 | reserved 1
    dcd.u24(0); // bufferSizeDB
    dcd.u32(0); // maxBitrate (unknown)
    dcd.u32(0); // avgBitrate (unknown: variable)
    dcd.bytes(&dsi.buf);
    let mut es = Writer::new();
    es.u16(track_id as u16); // ES_ID
    es.u8(0); // no dependsOn, URL, OCR stream; priority 0
    descriptor(&mut es, 0x04, &dcd.buf);
    descriptor(&mut es, 0x06, &[0x02]); // SLConfigDescriptor predefined = 2 (MP4)
    w.full(b"esds", 0, 0, |w| descriptor(w, 0x03, &es.buf));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_sizes() {
        let cases: &[(usize, &[u8])] = &[(0, &[0]), (127, &[0x7f]), (128, &[0x81, 0x00])];
        for (len, want) in cases {
            let mut w = Writer::new();
            descriptor(&mut w, 5, &vec![0; *len]);
            assert_eq!(&w.buf[1..1 + want.len()], *want, "{len}");
        }
    }

    #[test]
    fn esds_bytes() {
        let mut w = Writer::new();
        write_esds(&mut w, 2, &[0x11, 0x90]);
        #[rustfmt::skip]
        let want: &[u8] = &[
            0, 0, 0, 39, b'e', b's', b'd', b's', 0, 0, 0, 0, // esds v0
            0x03, 25, 0, 2, 0,                               // ES_Descriptor, ES_ID 2, flags
            0x04, 17, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // DecoderConfigDescriptor
            0x05, 2, 0x11, 0x90,                              // DecoderSpecificInfo = ASC
            0x06, 1, 0x02,                                    // SLConfigDescriptor
        ];
        assert_eq!(w.buf, want);
    }
}
