import S2Model
import S2XMPP

/// Target `xmpp`: `XMPPConnectionDecoder` fed arbitrary bytes in both directions, split at
/// fuzzer-chosen points, with gaps.
///
/// Input: a header byte (bit0: small `XMLLimits`), then operations: `op` (bit0 direction,
/// bits1-3 kind): kinds 0-5 feed the next `n` bytes of the input (`n` = next byte, 0 means 1);
/// kind 6 declares a gap of 1-256 bytes, kind 7 one of 1-65,536 bytes. Each operation is one frame.
public enum XMPPFuzz {
    final class CheckingSink: XMPPEventSink {
        var fedEnd: [UInt64] = [0, 0]
        var frameNumber = 0
        var events = 0

        func xmppEvent(_ e: XMPPEvent) {
            events += 1
            invariant(e.startOffset <= e.endOffset, "event \(e.kind) spans \(e.startOffset)..<\(e.endOffset)")
            invariant(e.endOffset <= fedEnd[e.direction.rawValue] + 1,
                      "event \(e.kind) ends at \(e.endOffset), only \(fedEnd[e.direction.rawValue]) bytes fed")
            invariant(e.firstFrame.number <= e.lastFrame.number, "event frames out of order")
            invariant(e.lastFrame.number <= frameNumber, "event from a frame not fed yet")
            switch e.kind {
            case .element(let el): _ = el.render(limit: 4096)
            case .streamOpened(let h): _ = h.render()
            default: break
            }
        }

        func xmppAnomaly(_ a: Anomaly) {
            invariant(!a.message.isEmpty, "anomaly without message")
        }
    }

    public static func run(_ data: UnsafeRawBufferPointer) {
        var c = ByteCursor(data)
        let header = c.u8()
        var limits = XMLLimits()
        if header & 1 != 0 {
            limits.maxElementBytes = 512
            limits.maxNodes = 8
            limits.maxTreeDepth = 3
            limits.maxTextBytes = 64
            limits.maxNestingDepth = 16
            limits.maxTokenBytes = 256
        }
        let sink = CheckingSink()
        let decoder = XMPPConnectionDecoder(connection: ConnectionID(1), limits: limits, sink: sink)
        var time = Timestamp(seconds: 1_700_000_000, nanoseconds: 0)
        while !c.isAtEnd {
            let op = c.u8()
            let d: Direction = op & 1 == 0 ? .clientToServer : .serverToClient
            sink.frameNumber += 1
            time = time.adding(seconds: 0.001)
            let frame = FrameRef(input: 0, number: sink.frameNumber, time: time)
            let at = sink.fedEnd[d.rawValue]
            switch (op >> 1) & 7 {
            case 6, 7:
                let length = (op >> 1) & 7 == 6 ? UInt64(c.u8()) + 1 : UInt64(c.u16()) + 1
                sink.fedEnd[d.rawValue] = at + length
                decoder.gap(d, at: at, length: length, frame: frame)
            default:
                let n = max(1, Int(c.u8()))
                let chunk = c.bytes(n)
                guard !chunk.isEmpty else { break }
                let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk.count, alignment: 1)
                defer { copy.deallocate() }
                copy.copyMemory(from: chunk)
                sink.fedEnd[d.rawValue] = at + UInt64(chunk.count)
                decoder.feed(d, UnsafeRawBufferPointer(copy), at: at, frame: frame)
            }
        }
        decoder.finish()
    }
}
