import S2Model

/// Maps stream offsets back to the frames that carried them (gopacket's
/// `ScatterGather.CaptureInfo(offset)`). Entries are appended per delivered chunk and trimmed
/// once no pending event can start before them, so the index stays small.
struct OffsetIndex {
    private var offsets: [UInt64] = []
    private var frames: [FrameRef] = []
    private var head = 0

    mutating func append(offset: UInt64, frame: FrameRef) {
        if head < offsets.count, let last = frames.last, last == frame, offsets.last! <= offset { return }
        offsets.append(offset)
        frames.append(frame)
    }

    /// The frame that carried the byte at `offset` (the closest earlier chunk).
    func frame(at offset: UInt64) -> FrameRef? {
        guard head < offsets.count else { return nil }
        var lo = head, hi = offsets.count - 1
        if offset <= offsets[lo] { return frames[lo] }
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if offsets[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        return frames[lo]
    }

    /// Forgets chunks that end before `offset` (keeps the chunk containing it).
    mutating func trim(before offset: UInt64) {
        while head + 1 < offsets.count && offsets[head + 1] <= offset { head += 1 }
        if head > 64 && head * 2 > offsets.count {
            offsets.removeFirst(head)
            frames.removeFirst(head)
            head = 0
        }
    }

    var count: Int { offsets.count - head }
}
