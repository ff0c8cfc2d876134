/// Maps 32-bit TCP sequence numbers into a 64-bit offset space relative to the start of a
/// direction's byte stream (Zeek's relative sequence space), so wrap-around at 2^32
/// disappears above this type.
struct SequenceSpace {
    /// Sequence number of stream offset 0.
    var base: UInt32 = 0

    /// The 64-bit offset of `seq`, chosen as the one nearest to `near` (an offset already known
    /// to be close, normally the next expected byte). Negative when `seq` lies before offset 0.
    @inline(__always)
    func offset(of seq: UInt32, near: UInt64) -> Int64 {
        let nearSeq = base &+ UInt32(truncatingIfNeeded: near)
        // `near` stays below ReassemblyLimits.maxStreamOffset (at most 2^62) plus one packet's move:
        // far below 2^63, so neither the conversion nor the sum can trap.
        return Int64(near) + Int64(Int32(bitPattern: seq &- nearSeq))
    }
}
