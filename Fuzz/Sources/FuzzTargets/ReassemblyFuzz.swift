import S2Model
import S2Reassembly
import S2Wire

/// Target `reassembly`: the fuzz input is a stream of small segment descriptors turned into
/// `TCPSegment`s for `TCPReassembler`; a checking sink verifies, per connection and direction,
/// that delivered data and gaps are contiguous from offset 0 with no overlap and no hole, that
/// the delivered bytes are the bytes that were sent (first copy wins when all copies agree),
/// and that every opened connection is closed exactly once and nothing arrives after that.
///
/// Input: a header byte, then 8-byte descriptors:
/// - header: bit0 small limits (2 connections, 512 B / 6 segments out of order per direction,
///   1 KiB in total, 32 B retained); bit1 / bit2: the client / server ISN sits just below 2^32.
/// - descriptor: `flags` (bit0 from the server side, bit1 SYN, bit2 ACK, bit3 FIN, bit4 RST,
///   bit5 corrupt payload, bits6-7 client port 40000+n), `seq:2` and `ack:2` (LE, relative to
///   the sender's / receiver's ISN, minus 16), `len:1` payload bytes, `dt:1` milliseconds of
///   capture time (255: +1000 s, idle timeout; 254: +40 s, closed linger), `extra:1` (bit0 the
///   snap length cut half of the payload, bit1 IPv6 addresses).
public enum ReassemblyFuzz {
    static let serverPort: UInt16 = 5269

    /// The byte a sender puts at sequence number `seq`: consecutive mod 256, per side.
    @inline(__always)
    static func byteAt(_ seq: UInt32, fromServer: Bool) -> UInt8 {
        UInt8(truncatingIfNeeded: seq) ^ (fromServer ? 0x5a : 0)
    }

    final class CheckingSink: ReassemblySink {
        struct Half { var next: UInt64 = 0; var base: Int? = nil }
        struct State { var closed = false; var halves = [Half(), Half()]; var client: Endpoint; var server: Endpoint }
        var states: [Int: State] = [:]
        var checkContent = true
        var anomalies = 0

        func connectionOpened(_ c: TCPConnection) {
            invariant(states[c.id.value] == nil, "connection \(c.id) opened twice")
            states[c.id.value] = State(client: c.client, server: c.server)
        }

        private func live(_ c: TCPConnection, _ what: String) -> State {
            guard let s = states[c.id.value] else { invariant(false, "\(what) on unopened \(c.id)"); fatalError() }
            invariant(!s.closed, "\(what) on \(c.id) after it was closed")
            return s
        }

        func streamData(_ c: TCPConnection, _ d: Direction, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef) {
            var s = live(c, "data")
            invariant(!bytes.isEmpty, "empty data chunk on \(c.id)")
            let h = s.halves[d.rawValue]
            invariant(offset == h.next, "\(c.id) \(d.reportName): data at \(offset), expected \(h.next) (overlap or hole)")
            s.halves[d.rawValue].next = offset + UInt64(bytes.count)
            if checkContent {
                let fromServer = (d == .clientToServer ? s.client : s.server).port == ReassemblyFuzz.serverPort
                // (byte ^ mask) - offset is constant along one direction's stream.
                var base = s.halves[d.rawValue].base
                for (i, b) in bytes.enumerated() {
                    let v = Int((b ^ (fromServer ? 0x5a : 0)) &- UInt8(truncatingIfNeeded: offset + UInt64(i)))
                    if let base {
                        invariant(v == base, "\(c.id) \(d.reportName): byte at offset \(offset + UInt64(i)) is not the byte sent there")
                    } else {
                        base = v
                    }
                }
                s.halves[d.rawValue].base = base
            }
            states[c.id.value] = s
            _ = touch(bytes)
        }

        func streamGap(_ c: TCPConnection, _ d: Direction, at offset: UInt64, length: UInt64, frame: FrameRef) {
            var s = live(c, "gap")
            invariant(length > 0, "empty gap on \(c.id)")
            let h = s.halves[d.rawValue]
            invariant(offset == h.next, "\(c.id) \(d.reportName): gap at \(offset), expected \(h.next)")
            s.halves[d.rawValue].next = offset + length
            states[c.id.value] = s
        }

        func connectionClosed(_ c: TCPConnection) {
            var s = live(c, "close")
            s.closed = true
            states[c.id.value] = s
            invariant(c.isClosed, "\(c.id) reported closed without a close reason")
        }

        func anomaly(_ a: Anomaly) {
            invariant(!a.message.isEmpty, "anomaly without message")
            anomalies += 1
        }
    }

    public static func run(_ data: UnsafeRawBufferPointer) {
        var c = ByteCursor(data)
        let header = c.u8()
        var limits = ReassemblyLimits()
        if header & 1 != 0 {
            limits.maxConnections = 2
            limits.maxOutOfOrderBytesPerDirection = 512
            limits.maxOutOfOrderSegmentsPerDirection = 6
            limits.maxOutOfOrderBytesTotal = 1024
            limits.retainedBytesPerDirection = 32
        }
        let clientISN: UInt32 = header & 2 != 0 ? 0xffff_ff00 : 1000
        let serverISN: UInt32 = header & 4 != 0 ? 0xffff_fff0 : 0x1000_0000
        let sink = CheckingSink()
        let r = TCPReassembler(limits: limits, sink: sink, isServerPort: { $0 == serverPort })
        var time = Timestamp(seconds: 1_700_000_000, nanoseconds: 0)
        var payload = [UInt8](repeating: 0, count: 256)
        var number = 0
        while c.remaining >= 8 {
            let f = c.u8(), seqRel = c.u16(), ackRel = c.u16(), len = Int(c.u8()), dt = c.u8(), extra = c.u8()
            number += 1
            switch dt {
            case 255: time = time.adding(seconds: 1000)
            case 254: time = time.adding(seconds: 40)
            default: time = time.adding(seconds: Double(dt) / 1000)
            }
            let fromServer = f & 1 != 0
            let v6 = extra & 2 != 0
            let clientAddr = v6 ? IPAddress(ipv6High: 0x2001_0db8_0000_0000, low: 1) : IPAddress(ipv4: 0x0a00_0001)
            let serverAddr = v6 ? IPAddress(ipv6High: 0x2001_0db8_0000_0000, low: 2) : IPAddress(ipv4: 0x0a00_0002)
            let client = Endpoint(address: clientAddr, port: 40000 + UInt16(f >> 6))
            let server = Endpoint(address: serverAddr, port: serverPort)
            let myISN = fromServer ? serverISN : clientISN, peerISN = fromServer ? clientISN : serverISN
            let seq = myISN &+ UInt32(seqRel) &- 16
            let ack = peerISN &+ UInt32(ackRel) &- 16
            var flags = TCPFlags()
            if f & 2 != 0 { flags.insert(.syn) }
            if f & 4 != 0 { flags.insert(.ack) }
            if f & 8 != 0 { flags.insert(.fin) }
            if f & 16 != 0 { flags.insert(.rst) }
            let corrupt = f & 32 != 0
            if corrupt { sink.checkContent = false }
            // Data starts after the SYN's sequence number.
            let dataSeq = flags.contains(.syn) ? seq &+ 1 : seq
            for i in 0..<len {
                payload[i] = byteAt(dataSeq &+ UInt32(i), fromServer: fromServer) ^ (corrupt ? 0xff : 0)
            }
            let captured = extra & 1 != 0 ? len / 2 : len
            payload.withUnsafeBytes { p in
                // An exact-size copy, so that ASan catches reads past the captured bytes.
                let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: captured, alignment: 1)
                defer { copy.deallocate() }
                copy.copyMemory(from: UnsafeRawBufferPointer(rebasing: p[0..<captured]))
                let seg = TCPSegment(source: fromServer ? server : client, destination: fromServer ? client : server,
                                     sequence: seq, acknowledgment: ack, flags: flags, window: 65535,
                                     payload: UnsafeRawBufferPointer(copy), payloadLength: len,
                                     frame: FrameRef(input: 0, number: number, time: time))
                r.process(seg)
            }
            invariant(r.activeConnections <= limits.maxConnections, "\(r.activeConnections) connections tracked, cap \(limits.maxConnections)")
            invariant(r.heldBytes >= 0 && r.heldBytes <= limits.maxOutOfOrderBytesTotal,
                      "\(r.heldBytes) out-of-order bytes held, cap \(limits.maxOutOfOrderBytesTotal)")
        }
        r.finish()
        for (id, s) in sink.states { invariant(s.closed, "C\(id) still open after finish()") }
        invariant(r.heldBytes == 0, "\(r.heldBytes) bytes still held after finish()")
        invariant(r.statistics.connectionsOpened == sink.states.count, "connection count mismatch")
    }
}
