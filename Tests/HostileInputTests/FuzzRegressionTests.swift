import S2TestSupport
import Foundation
import S2Model
import S2Reassembly
import S2Synth
import S2Wire
import Testing

/// Inputs the fuzz targets (Fuzz/, `make fuzz`) found crashing, kept as tests.
struct FuzzRegressionTests {
    /// Records what the reassembler delivers and checks offsets stay contiguous per direction.
    final class OffsetSink: ReassemblySink {
        var next: [Int: [UInt64]] = [:]
        var problems: [String] = []
        func connectionOpened(_ c: TCPConnection) { next[c.id.value] = [0, 0] }
        func streamData(_ c: TCPConnection, _ d: Direction, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef) {
            check(c, d, offset, UInt64(bytes.count), "data")
        }
        func streamGap(_ c: TCPConnection, _ d: Direction, at offset: UInt64, length: UInt64, frame: FrameRef) {
            check(c, d, offset, length, "gap")
        }
        private func check(_ c: TCPConnection, _ d: Direction, _ offset: UInt64, _ length: UInt64, _ what: String) {
            let expected = next[c.id.value]![d.rawValue]
            if offset != expected { problems.append("\(c.id) \(d.reportName): \(what) at \(offset), expected \(expected)") }
            next[c.id.value]![d.rawValue] = offset + length
        }
        func connectionClosed(_ c: TCPConnection) {}
        func anomaly(_ anomaly: Anomaly) {}
    }

    /// fuzz-reassembly: a SYN-ACK, an ACK far past it (the skipped bytes become a gap at offset 0),
    /// then a second SYN-ACK with a new ISN and data. The reassembler re-based the direction
    /// because nothing had been *delivered*, and handed out offset 0 again after the gap had
    /// reached 226: offsets went backwards. It must only re-base while nothing was delivered or
    /// declared missing.
    @Test func synAckWithNewISNAfterAGapDoesNotRewindTheStream() {
        let sink = OffsetSink()
        let r = TCPReassembler(sink: sink, isServerPort: { $0 == 5269 })
        let client = Endpoint(address: IPAddress(ipv4: 0x0a00_0001), port: 40000)
        let server = Endpoint(address: IPAddress(ipv4: 0x0a00_0002), port: 5269)
        let payload = [UInt8](repeating: 0x41, count: 17)
        var n = 0
        func send(_ fromServer: Bool, seq: UInt32, ack: UInt32, _ flags: TCPFlags, _ data: [UInt8] = []) {
            n += 1
            data.withUnsafeBytes { p in
                r.process(TCPSegment(source: fromServer ? server : client, destination: fromServer ? client : server,
                                     sequence: seq, acknowledgment: ack, flags: flags, window: 65535, payload: p,
                                     payloadLength: data.count,
                                     frame: FrameRef(input: 0, number: n, time: Timestamp(seconds: 1_700_000_000, nanoseconds: Int32(n)))))
            }
        }
        send(true, seq: 0x1000_000e, ack: 985, [.syn, .ack])
        send(false, seq: 985, ack: 0x1000_000e &+ 1 &+ 226, [.ack])
        send(true, seq: 0x1000_10f0, ack: 1992, [.syn, .ack], payload)
        r.finish()
        #expect(sink.problems.isEmpty, "\(sink.problems)")
    }

    /// fuzz-pipeline: a pcap record whose microsecond field is 4,294,967,295. libpcap scales it to
    /// nanoseconds unchecked, and `Int32(tv_usec)` trapped: s2scope crashed on a damaged record.
    /// The excess now carries into the seconds; the capture is analysed.
    @Test func recordWithAnOutOfRangeSubsecondFieldIsAnalysed() throws {
        let cap = try HostileCapture()
        var bytes = cap.bytes
        // The last record is the message after the dialback; set its ts_usec (offset 4 of the record header).
        let last = try #require(pcapRecordOffsets(bytes).last)
        for i in 4..<8 { bytes[last + i] = 0xff }
        let r = try runMeasured(["analyze", "--quiet", "--format", "json", temporaryFile(bytes)])
        #expect(r.status == 0 || r.status == 1, "exit \(r.status): \(r.stderr.prefix(400))")
        let json = try #require(r.json, "one JSON document")
        let inputs = json["inputs"] as? [[String: Any]] ?? []
        #expect(inputs.first?["packets"] as? Int == cap.frames)
        let dialbacks = json["dialbacks"] as? [[String: Any]] ?? []
        #expect(dialbacks.contains { $0["outcome"] as? String == "valid" && $0["stream_id"] as? String == "s1" })
    }
}

/// Issue #16: one 70-byte IPv6 frame (an atomic Fragment header, then a Destination Options header
/// longer than the frame) made `s2scope` trap — offline the whole report was lost, live the sensor
/// died. The fixture holds it, the same headers overrunning the payload length, and a valid SYN
/// behind an atomic Fragment header.
struct WireTrapRegressionCLITests {
    @Test func theIssue16CaptureIsAnalysedAndItsFramesReported() throws {
        let path = repoRoot.appendingPathComponent("fixtures/decode/ipv6-atomic-fragment-dstopts-overrun.pcap").path
        let r = try runMeasured(["analyze", "--quiet", "--format", "json", path])
        #expect(r.status == 0, "exit \(r.status) (a trap is signal 4): \(r.stderr.prefix(400))")
        let json = try #require(r.json, "one JSON document")
        let anomalies = json["anomalies"] as? [[String: Any]] ?? []
        let malformed = anomalies.filter { $0["kind"] as? String == "malformed-packet" }
        #expect(malformed.compactMap { $0["packet"] as? Int } == [1, 2])
        let first = malformed.first?["message"] as? String ?? ""
        #expect(first.contains("extension headers end at payload byte 2056") && first.contains("captured whole"), "\(first)")
        let summary = json["summary"] as? [String: Any] ?? [:]
        #expect(summary["packets"] as? Int == 3)
        #expect(summary["tcp_connections"] as? Int == 1, "the SYN of frame 3 opens a connection")
    }
}
