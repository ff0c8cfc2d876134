import S2Model
import S2Wire

/// Target `decode`: `FrameDecoder.decode` over arbitrary bytes, with every supported link type.
///
/// Input: a sequence of records `[selector:1][length:2 LE][frame bytes]`; the low nibble of the
/// selector picks the link type (`linkTypes`), the high nibble advances capture time by that many
/// 5-second steps (IP fragment timeouts). One decoder per input, so IP fragments of one input
/// reassemble across its records.
public enum DecodeFuzz {
    public static let linkTypes: [Int32] = [1, 113, 276, 0, 108, 12, 14, 101, 228, 229, 147, 1, 1, 113, 12, 101]

    public static func run(_ data: UnsafeRawBufferPointer) {
        var c = ByteCursor(data)
        let decoder = FrameDecoder(fragmentLimits: {
            var l = IPFragmentReassembler.Limits()
            l.maxDatagrams = 4  // small, so eviction runs too
            return l
        }())
        var time = Timestamp(seconds: 1_700_000_000, nanoseconds: 0)
        var number = 0
        var sink: UInt8 = 0
        while !c.isAtEnd {
            let sel = c.u8()
            let len = Int(c.u16())
            let frameBytes = c.bytes(len)
            // Copy into an exact-size allocation so that ASan catches any read past the frame.
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: frameBytes.count, alignment: 1)
            defer { copy.deallocate() }
            if !frameBytes.isEmpty { copy.copyMemory(from: frameBytes) }
            let frame = UnsafeRawBufferPointer(copy)
            number += 1
            time = time.adding(seconds: Double(sel >> 4) * 5)
            let ref = FrameRef(input: 0, number: number, time: time)
            let dlt = linkTypes[Int(sel & 0x0f)]
            switch decoder.decode(frame, linkType: dlt, frame: ref) {
            case .success(let seg):
                invariant(seg.payload.count <= seg.payloadLength, "payload \(seg.payload.count) > announced \(seg.payloadLength)")
                invariant(seg.payloadLength <= 65_535, "payload length \(seg.payloadLength) > 65535")
                invariant(seg.frame.number <= number, "segment from a future frame")
                invariant(LinkType(dlt: dlt) != nil, "decoded an unsupported link type")
                sink ^= touch(seg.payload)
            case .failure(.unsupportedLinkType(let t)):
                invariant(LinkType(dlt: t) == nil, "supported link type \(t) reported unsupported")
            case .failure(.malformed(let why)):
                invariant(!why.isEmpty, "malformed without a reason")
            case .failure:
                break
            }
            invariant(decoder.fragments.inProgress <= 4, "fragment table above its cap: \(decoder.fragments.inProgress)")
        }
        decoder.fragments.flush()
        invariant(decoder.fragments.inProgress == 0, "fragments left after flush")
        _ = sink
    }
}
