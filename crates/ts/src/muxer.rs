//! The muxer: stream configuration, PSI scheduling, PCR scheduling and PES packetization.

use crate::codec::{self, AudioSpecificConfig, Avcc, Hvcc, VideoCodec};
use crate::error::{Error, Result};
use crate::packet::{self, Adaptation};

/// PID of the program map table (ffmpeg's default, so dumps compare easily).
pub const PMT_PID: u16 = 0x1000;
/// PID of the first elementary stream; stream `i` of [`Muxer::new`] gets `FIRST_ES_PID + i`.
pub const FIRST_ES_PID: u16 = 0x100;
/// Most elementary streams one muxer takes (KVS HLS has at most 2 tracks; 16 keeps the PMT in
/// one packet with room to spare).
pub const MAX_STREAMS: usize = 16;
/// Longest gap between PCRs, in 90 kHz ticks (40 ms; ISO/IEC 13818-1 §2.7.2 allows 100 ms).
pub const PCR_INTERVAL_90K: i64 = 3_600;
/// How far the PCR runs behind the DTS of the PES that carries it (100 ms of decoder buffer),
/// so PES data arrives before its decode time in the T-STD model.
pub const PCR_DELAY_90K: i64 = 9_000;
/// Default [`Muxer::with_psi_interval`]: PAT+PMT again after this many packets (about every
/// 0.5 s at 3 Mbit/s), besides each segment start and each video key frame.
pub const DEFAULT_PSI_INTERVAL_PACKETS: u32 = 1_000;

/// Elementary stream types of the PMT (ISO/IEC 13818-1 Table 2-34).
const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;
const STREAM_TYPE_H264: u8 = 0x1B;
const STREAM_TYPE_H265: u8 = 0x24;

/// Codec and configuration record of one track.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecConfig {
    /// H.264 with its parsed avcC.
    H264(Avcc),
    /// H.265 with its parsed hvcC (parameter sets may be empty when the producer sends them
    /// in-band).
    H265(Hvcc),
    /// AAC with its parsed AudioSpecificConfig.
    Aac(AudioSpecificConfig),
}

/// One track to mux: its number in [`Sample::track`] and its codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// Track number used by [`Sample::track`] (the Matroska track number in openkvs).
    pub track: u64,
    /// Codec configuration.
    pub codec: CodecConfig,
}

impl StreamConfig {
    /// H.264 from the Matroska `CodecPrivate` (avcC) of `V_MPEG4/ISO/AVC`.
    pub fn h264(track: u64, avcc: &[u8]) -> Result<StreamConfig> {
        Ok(StreamConfig {
            track,
            codec: CodecConfig::H264(codec::avcc_parse(avcc)?),
        })
    }

    /// H.265 from the Matroska `CodecPrivate` (hvcC) of `V_MPEGH/ISO/HEVC`.
    pub fn h265(track: u64, hvcc: &[u8]) -> Result<StreamConfig> {
        Ok(StreamConfig {
            track,
            codec: CodecConfig::H265(codec::hvcc_parse(hvcc)?),
        })
    }

    /// AAC from the Matroska `CodecPrivate` (AudioSpecificConfig) of `A_AAC`. Fails now, not
    /// at the first sample, when ADTS cannot describe the configuration.
    pub fn aac(track: u64, asc: &[u8]) -> Result<StreamConfig> {
        let asc = AudioSpecificConfig::parse(asc)?;
        codec::adts_header(&asc, 0)?;
        Ok(StreamConfig {
            track,
            codec: CodecConfig::Aac(asc),
        })
    }
}

/// One access unit to mux.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample<'a> {
    /// Track number, as in [`StreamConfig::track`].
    pub track: u64,
    /// Presentation time, 90 kHz. Written modulo 2^33; keep it non-negative (offset the
    /// timeline) so that it does not wrap.
    pub pts_90k: i64,
    /// Decode time, 90 kHz; equal to `pts_90k` without B-frames and for audio.
    pub dts_90k: i64,
    /// Key frame (IDR / IRAP) for video; ignored for audio.
    pub sync: bool,
    /// Video: AVCC/HVCC length-prefixed NAL units. Audio: one raw AAC frame.
    pub data: &'a [u8],
}

#[derive(Debug)]
enum Kind {
    Video {
        codec: VideoCodec,
        nal_length_size: u8,
        parameter_sets: Vec<Vec<u8>>,
    },
    Audio(AudioSpecificConfig),
}

#[derive(Debug)]
struct Stream {
    track: u64,
    pid: u16,
    stream_type: u8,
    stream_id: u8,
    kind: Kind,
    cc: u8,
    discontinuity: bool,
}

/// MPEG-TS muxer for one program. See the crate docs for the drive loop.
#[derive(Debug)]
pub struct Muxer {
    streams: Vec<Stream>,
    pcr_pid: u16,
    pat: Vec<u8>,
    pmt: Vec<u8>,
    pat_cc: u8,
    pmt_cc: u8,
    psi_interval_packets: u32,
    packets_since_psi: u32,
    /// DTS that the last PCR was derived from; `None` forces a PCR on the next PCR-PID PES.
    last_pcr_dts_90k: Option<i64>,
    /// Reused PES payload buffer.
    es: Vec<u8>,
}

impl Muxer {
    /// A muxer for `streams`, which get PIDs `FIRST_ES_PID..` in order. The PCR rides on the
    /// first video stream, or the first stream if there is no video.
    pub fn new(streams: &[StreamConfig]) -> Result<Muxer> {
        if streams.is_empty() || streams.len() > MAX_STREAMS {
            return Err(Error::StreamCount {
                count: streams.len(),
            });
        }
        let mut out: Vec<Stream> = Vec::with_capacity(streams.len());
        let (mut video_n, mut audio_n) = (0u8, 0u8);
        for (i, s) in streams.iter().enumerate() {
            if out.iter().any(|o| o.track == s.track) {
                return Err(Error::DuplicateTrack { track: s.track });
            }
            let pid = FIRST_ES_PID + i as u16;
            let (stream_type, kind) = match &s.codec {
                CodecConfig::H264(a) => (
                    STREAM_TYPE_H264,
                    Kind::Video {
                        codec: VideoCodec::H264,
                        nal_length_size: a.nal_length_size,
                        parameter_sets: a.sps.iter().chain(&a.pps).cloned().collect(),
                    },
                ),
                CodecConfig::H265(h) => (
                    STREAM_TYPE_H265,
                    Kind::Video {
                        codec: VideoCodec::H265,
                        nal_length_size: h.nal_length_size,
                        parameter_sets: h.parameter_sets.clone(),
                    },
                ),
                CodecConfig::Aac(a) => (STREAM_TYPE_AAC_ADTS, Kind::Audio(*a)),
            };
            // PES stream_id: 0xE0.. video, 0xC0.. audio (ISO/IEC 13818-1 Table 2-22).
            let stream_id = match kind {
                Kind::Video { .. } => {
                    video_n += 1;
                    0xE0 + video_n - 1
                }
                Kind::Audio(_) => {
                    audio_n += 1;
                    0xC0 + audio_n - 1
                }
            };
            out.push(Stream {
                track: s.track,
                pid,
                stream_type,
                stream_id,
                kind,
                cc: 0,
                discontinuity: false,
            });
        }
        let pcr_pid = out
            .iter()
            .find(|s| matches!(s.kind, Kind::Video { .. }))
            .unwrap_or(&out[0])
            .pid;
        let es_list: Vec<(u8, u16)> = out.iter().map(|s| (s.stream_type, s.pid)).collect();
        Ok(Muxer {
            pat: packet::pat_section(PMT_PID),
            pmt: packet::pmt_section(pcr_pid, &es_list),
            streams: out,
            pcr_pid,
            pat_cc: 0,
            pmt_cc: 0,
            psi_interval_packets: DEFAULT_PSI_INTERVAL_PACKETS,
            packets_since_psi: 0,
            last_pcr_dts_90k: None,
            es: Vec::new(),
        })
    }

    /// Repeats PAT+PMT after `packets` packets (0: only at segment starts and key frames).
    pub fn with_psi_interval(mut self, packets: u32) -> Muxer {
        self.psi_interval_packets = packets;
        self
    }

    /// PID of the elementary stream of `track`.
    pub fn pid(&self, track: u64) -> Option<u16> {
        self.streams
            .iter()
            .find(|s| s.track == track)
            .map(|s| s.pid)
    }

    /// PID carrying the PCR.
    pub fn pcr_pid(&self) -> u16 {
        self.pcr_pid
    }

    /// Starts a segment: writes PAT and PMT and makes the next PCR-PID sample carry a PCR, so
    /// the segment is decodable on its own (HLS clients fetch segments independently).
    /// Continuity counters continue from the previous segment.
    pub fn segment_start(&mut self, out: &mut Vec<u8>) {
        self.write_psi(out);
        self.last_pcr_dts_90k = None;
    }

    /// Marks a discontinuity (a timestamp jump, or a muxer that stands in for another): the
    /// next packet of every elementary stream sets `discontinuity_indicator`
    /// (ISO/IEC 13818-1 §2.4.3.5), which allows a continuity-counter and PCR jump.
    pub fn set_discontinuity(&mut self) {
        for s in &mut self.streams {
            s.discontinuity = true;
        }
        self.last_pcr_dts_90k = None;
    }

    /// Appends the packets of one sample: one PES, preceded by PAT+PMT when due. Video gets an
    /// access unit delimiter and, on key frames, the parameter sets; audio gets an ADTS header.
    pub fn write_sample(&mut self, sample: &Sample<'_>, out: &mut Vec<u8>) -> Result<()> {
        let idx = self
            .streams
            .iter()
            .position(|s| s.track == sample.track)
            .ok_or(Error::UnknownTrack {
                track: sample.track,
            })?;
        let mut es = std::mem::take(&mut self.es);
        es.clear();
        let is_key = match &self.streams[idx].kind {
            Kind::Video {
                codec,
                nal_length_size,
                parameter_sets,
            } => {
                let r = codec::to_annex_b(
                    *codec,
                    *nal_length_size,
                    parameter_sets,
                    sample.sync,
                    sample.track,
                    sample.data,
                    &mut es,
                );
                if let Err(e) = r {
                    self.es = es;
                    return Err(e);
                }
                sample.sync
            }
            Kind::Audio(asc) => match codec::adts_header(asc, sample.data.len()) {
                Ok(h) => {
                    es.extend_from_slice(&h);
                    es.extend_from_slice(sample.data);
                    false
                }
                Err(e) => {
                    self.es = es;
                    return Err(e);
                }
            },
        };

        let psi_due =
            self.psi_interval_packets > 0 && self.packets_since_psi >= self.psi_interval_packets;
        if (is_key && self.packets_since_psi > 0) || psi_due {
            self.write_psi(out);
        }

        let stream = &mut self.streams[idx];
        let mut af = Adaptation {
            discontinuity: std::mem::take(&mut stream.discontinuity),
            random_access: is_key,
            pcr_90k: None,
        };
        if stream.pid == self.pcr_pid {
            let due = match self.last_pcr_dts_90k {
                None => true,
                // Saturating and wrapping: timestamps are written modulo 2^33, and a caller's
                // out-of-range value (fuzzing found i64::MIN) must not panic in debug builds.
                Some(last) => is_key || sample.dts_90k.saturating_sub(last) >= PCR_INTERVAL_90K,
            };
            if due {
                af.pcr_90k = Some(sample.dts_90k.wrapping_sub(PCR_DELAY_90K));
                self.last_pcr_dts_90k = Some(sample.dts_90k);
            }
        }

        let header = packet::pes_header(stream.stream_id, sample.pts_90k, sample.dts_90k, es.len());
        // Header and payload go out as one byte sequence; join them only in the first packet.
        let mut first = Vec::with_capacity(packet::PACKET_SIZE);
        first.extend_from_slice(&header);
        let take = (packet::PACKET_SIZE - 4)
            .saturating_sub(header.len())
            .min(es.len());
        first.extend_from_slice(&es[..take]);
        let n = packet::write_packet(out, stream.pid, true, stream.cc, af, &first);
        stream.cc = (stream.cc + 1) & 0x0F;
        let mut packets = 1;
        // The header always fits (at most 19 bytes); with an adaptation field the first packet
        // may have taken less than `take` of the payload.
        let mut pos = n - header.len();
        while pos < es.len() {
            let n = packet::write_packet(
                out,
                stream.pid,
                false,
                stream.cc,
                Adaptation::default(),
                &es[pos..],
            );
            stream.cc = (stream.cc + 1) & 0x0F;
            pos += n;
            packets += 1;
        }
        self.packets_since_psi = self.packets_since_psi.saturating_add(packets);
        self.es = es;
        Ok(())
    }

    fn write_psi(&mut self, out: &mut Vec<u8>) {
        packet::write_psi_packet(out, 0x0000, self.pat_cc, &self.pat);
        self.pat_cc = (self.pat_cc + 1) & 0x0F;
        packet::write_psi_packet(out, PMT_PID, self.pmt_cc, &self.pmt);
        self.pmt_cc = (self.pmt_cc + 1) & 0x0F;
        self.packets_since_psi = 0;
    }
}
