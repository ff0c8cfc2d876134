import S2Model
import S2Wire

/// Receives what the reassembler produces. Data arrives in stream order per direction, each
/// chunk tagged with the frame that carried it; holes arrive as `streamGap`, never as filler.
public protocol ReassemblySink: AnyObject {
    func connectionOpened(_ connection: TCPConnection)
    func streamData(_ connection: TCPConnection, _ direction: Direction, _ bytes: UnsafeRawBufferPointer,
                    at offset: UInt64, frame: FrameRef)
    func streamGap(_ connection: TCPConnection, _ direction: Direction, at offset: UInt64, length: UInt64,
                   frame: FrameRef)
    func connectionClosed(_ connection: TCPConnection)
    func anomaly(_ anomaly: Anomaly)
    /// The capture's snap length cut bytes of a direction: a segment whose payload was cut
    /// (`missing` bytes not captured; `gap` false), or a hole that lies wholly in such cut-off
    /// bytes (`gap` true; `streamGap` was called for it as for any hole). A sink that does not
    /// implement it gets one `truncated-packet` or `gap` anomaly each.
    func snapLengthCut(_ connection: TCPConnection, _ direction: Direction, frame: FrameRef, missing: UInt64, gap: Bool)
}

extension ReassemblySink {
    public func snapLengthCut(_ connection: TCPConnection, _ direction: Direction, frame: FrameRef, missing: UInt64, gap: Bool) {
        anomaly(Anomaly(kind: gap ? .gap : .truncatedPacket, connection: connection.id, direction: direction, frame: frame, bytes: missing,
                        message: gap ? "\(missing) bytes missing (cut by the snap length); analysis resumes after the hole"
                                     : "frame cut by the snap length: \(missing) payload bytes missing"))
    }
}

/// TCP stream reassembly for a passive observer.
///
/// Policies (see also README "TCP reassembly"):
/// - **First copy wins** on overlap (RFC 9293 receivers keep the bytes they accepted first);
///   a later copy that differs raises `overlap-conflict`. Delivered bytes are compared against
///   the last `retainedBytesPerDirection` bytes kept for that purpose.
/// - **Gaps are never filled.** Bytes missing for good — the receiver acknowledged past them, or
///   the flow ended — are reported once per hole with their size (`gap`), then delivery goes on.
/// - **Midstream pickup** (no SYN/SYN-ACK) starts the stream at the first byte seen
///   (`midstream-pickup`); one-sided flows are analysed and reported (`one-sided`).
/// - A RST delivers its payload, then ends the connection; a SYN on a closed 4-tuple, or one
///   with a new ISN, starts a new connection.
/// - Sequence numbers live in a 64-bit relative space, so the 2^32 wrap is invisible.
/// - Memory is bounded by `ReassemblyLimits`; idle connections expire on capture time.
public final class TCPReassembler {
    public let limits: ReassemblyLimits
    public var statistics: ReassemblyStatistics { _statistics }
    var _statistics: ReassemblyStatistics = ReassemblyStatistics()
    /// Decides which port is the server side of a connection whose SYN was not seen.
    public var isServerPort: (UInt16) -> Bool

    private unowned let sink: ReassemblySink
    private var table: [FlowKey: TCPConnection] = [:]
    private var queue: [TCPConnection] = []
    private var queueHead = 0
    private var nextID = 1
    private var heldTotal = 0
    private var lastKey: FlowKey?
    private var lastConnection: TCPConnection?
    private var lastExpirySecond: Int64 = .min
    private var tableLimitReported = false

    public init(limits: ReassemblyLimits = .init(), sink: ReassemblySink, isServerPort: @escaping (UInt16) -> Bool) {
        self.limits = limits
        self.sink = sink
        self.isServerPort = isServerPort
    }

    public var activeConnections: Int { table.count }
    public var heldBytes: Int { heldTotal }
    /// Bytes of the retransmission-comparison rings of open connections.
    public var ringBytes: Int { _ringBytes }
    var _ringBytes: Int = 0

    // MARK: - Segments

    public func process(_ seg: TCPSegment) {
        _statistics.segments += 1
        let now = seg.frame.time
        if now.seconds != lastExpirySecond {
            lastExpirySecond = now.seconds
            expire(now: now)
        }
        let key = FlowKey(seg.source, seg.destination)
        var conn: TCPConnection?
        if key == lastKey, let c = lastConnection, !c.removed { conn = c } else { conn = table[key] }
        let syn = seg.flags.contains(.syn), ack = seg.flags.contains(.ack)

        if let c = conn, syn && !ack {
            if c.isClosed {
                remove(c)
                conn = nil
            } else if seg.source == c.client, let isn = c.clientISN, isn == seg.sequence {
                // A retransmitted SYN: nothing new.
            } else if seg.source != c.client || c.clientISN != nil || c.c2s.delivered > 0 || c.s2c.delivered > 0 {
                // A new SYN on a live 4-tuple: the old connection is over (port reuse).
                close(c, reason: .reused, frame: seg.frame)
                remove(c)
                conn = nil
            }
        }
        if conn == nil {
            if seg.flags.contains(.rst) && seg.payload.isEmpty && seg.payloadLength == 0 && !syn {
                _statistics.ignoredSegments += 1  // a lone RST for a connection we never saw
                return
            }
            conn = open(seg)
        }
        guard let c = conn else { return }
        lastKey = key
        lastConnection = c
        if c.isClosed {
            _statistics.ignoredSegments += 1
            c.lastSeen = now
            return
        }
        if c.c2s.next > limits.maxStreamOffset || c.s2c.next > limits.maxStreamOffset {
            // One packet moves an offset by about 2^32 at most (an acknowledgment 2^31 ahead, a
            // held segment as far), so ending a stream here keeps every 64-bit offset, here and in
            // the layers above, far from overflow. Only a peer that acknowledges ~2 GiB ahead,
            // 2^31 times over, gets there.
            _statistics.limitHits += 1
            sink.anomaly(Anomaly(kind: .limitReached, connection: c.id, frame: seg.frame,
                                 message: "stream offsets passed \(limits.maxStreamOffset) bytes (acknowledgments far ahead of any data): the connection is closed, and its next packet starts a new one"))
            close(c, reason: .evicted, frame: seg.frame)
            remove(c)
            return
        }
        c._lastFrame = seg.frame
        c.lastSeen = now
        let dir: Direction = seg.source == c.client ? .clientToServer : .serverToClient
        handle(seg, on: c, dir)
    }

    private func open(_ seg: TCPSegment) -> TCPConnection {
        if table.count >= limits.maxConnections { evictOne(frame: seg.frame) }
        let syn = seg.flags.contains(.syn), ack = seg.flags.contains(.ack)
        let client: Endpoint, server: Endpoint
        if syn && !ack {
            (client, server) = (seg.source, seg.destination)
        } else if syn && ack {
            (client, server) = (seg.destination, seg.source)
        } else if isServerPort(seg.source.port) && !isServerPort(seg.destination.port) {
            (client, server) = (seg.destination, seg.source)
        } else {
            (client, server) = (seg.source, seg.destination)
        }
        let c = TCPConnection(id: ConnectionID(nextID), client: client, server: server, frame: seg.frame, handshake: syn)
        nextID += 1
        table[FlowKey(client, server)] = c
        queue.append(c)
        _statistics.connectionsOpened += 1
        _statistics.peakConnections = max(_statistics.peakConnections, table.count)
        sink.connectionOpened(c)
        if !syn {
            _statistics.midstreamConnections += 1
            sink.anomaly(Anomaly(kind: .midstreamPickup, connection: c.id, frame: seg.frame,
                                 message: "connection picked up mid-stream: its SYN was not captured; the stream starts at the first byte seen"))
        }
        return c
    }

    private func handle(_ seg: TCPSegment, on c: TCPConnection, _ dir: Direction) {
        let syn = seg.flags.contains(.syn)
        if syn {
            if dir == .clientToServer { c.clientISN = seg.sequence }
            c._sawHandshake = true
        }
        let dataSeq = syn ? seg.sequence &+ 1 : seg.sequence
        let hasData = seg.payloadLength > 0
        // This direction's half is changed in one access (each costs an exclusivity check at run
        // time); what follows for the peer's half reads nothing of it.
        let offset: Int64 = c.withHalf(dir) { h in
            h.packets += 1
            // Re-base only while nothing of this direction was delivered *or declared a gap*
            // (`next` counts both): the sink has seen offsets up to `next` already.
            if syn && (!h.started || (h.next == 0 && h.held.isEmpty)) {
                h.space.base = seg.sequence &+ 1
                h.next = 0
                h.started = true
                h.startSeen = true
            }
            if !h.started && (hasData || seg.flags.contains(.fin)) {
                h.space.base = dataSeq
                h.started = true
            }
            return h.started ? h.space.offset(of: dataSeq, near: h.next) : 0
        }
        // One half of the handshake lost: the other half's acknowledgment still names where the
        // silent direction starts (its ISN + 1), so a later hole in it is known from its first
        // byte instead of the direction looking picked up mid-stream. Only an acknowledgment sent
        // before the initiator's first data byte can name it: a later one (the handshake's ACK
        // and the acceptor's first bytes both dropped by a loaded sensor) points into the middle
        // of the acceptor's stream, which would then be parsed as if it began there.
        let namesPeerStart = dir == .clientToServer ? c.clientISN.map { seg.sequence == $0 &+ 1 } ?? false : syn
        if seg.flags.contains(.ack), c.sawHandshake, namesPeerStart {
            let peer = dir.reversed
            c.withHalf(peer) { h in
                if !h.started {
                    h.space.base = seg.acknowledgment
                    h.started = true
                    h.startSeen = true
                }
            }
        }
        // The acknowledgment speaks of peer bytes sent before this segment: a hole it proves
        // (lost bytes) comes first, so what the peer lost is known before this segment's payload
        // is judged (a stanza after a lost `valid`, a reply after a lost request).
        if seg.flags.contains(.ack) {
            let peer = dir.reversed
            let (started, ackOffset, next, fin) = c.withHalf(peer) { h in
                (h.started, h.space.offset(of: seg.acknowledgment, near: h.next), h.next, h.finOffset)
            }
            if started && ackOffset > Int64(next) {
                var limit = UInt64(ackOffset)
                if let fin, limit > fin { limit = fin }
                // One unacknowledged-looking byte may be a FIN we did not see, not data.
                if limit > next + 1 || (limit > next && fin != nil) {
                    flush(c, peer, upTo: limit, frame: seg.frame)
                    checkFinished(c, peer)
                }
            }
        }
        if hasData {
            if seg.isSnapTruncated {
                let missing = UInt64(seg.payloadLength - seg.payload.count)
                if offset >= 0 {
                    let from = UInt64(offset) + UInt64(seg.payload.count)
                    c.withHalf(dir) { $0.noteSnapCut(from..<(from + missing)) }
                }
                sink.snapLengthCut(c, dir, frame: seg.frame, missing: missing, gap: false)
            }
            if !seg.payload.isEmpty { insert(seg.payload, at: offset, on: c, dir, frame: seg.frame) }
        }
        if seg.flags.contains(.fin) {
            c.sawFIN = true
            let finAt = offset + Int64(seg.payloadLength)
            if finAt >= 0 {
                c.withHalf(dir) { h in if h.finOffset == nil { h.finOffset = UInt64(finAt) } }
            }
            checkFinished(c, dir)
        }
        if seg.flags.contains(.rst) {
            c.sawRST = true
            close(c, reason: .rst, frame: seg.frame)
        } else if c.c2s.finished && c.s2c.finished {
            close(c, reason: .fin, frame: seg.frame)
        }
    }

    private func checkFinished(_ c: TCPConnection, _ dir: Direction) {
        c.withHalf(dir) { h in
            if let fin = h.finOffset, h.next >= fin { h.finished = true }
        }
    }

    // MARK: - Insertion and delivery

    private func insert(_ bytes: UnsafeRawBufferPointer, at offset: Int64, on c: TCPConnection, _ dir: Direction, frame: FrameRef) {
        var start = offset
        let end = offset + Int64(bytes.count)
        guard end > 0 else { _statistics.ignoredSegments += 1; return }
        if start < 0 { start = 0 }
        let next = Int64(c.withHalf(dir) { $0.next })
        // offset <= start < end = offset + bytes.count, so every slice below exists; they are
        // taken through the checked reader all the same, and a miss drops the segment.
        let wire = WireBytes(bytes)
        if start < next {
            _statistics.retransmittedSegments += 1
            let overlapEnd = min(end, next)
            if let overlap = wire.slice(from: Int(start - offset), to: Int(overlapEnd - offset)) {
                compareWithDelivered(c, dir, overlap, at: UInt64(start), frame: frame)
            }
            start = overlapEnd
            if start >= end { return }
        }
        guard let slice = wire.suffix(from: Int(start - offset)) else { _statistics.ignoredSegments += 1; return }
        if start == next && c.withHalf(dir, { $0.held.isEmpty }) {
            deliver(slice, at: UInt64(start), on: c, dir, frame: frame)  // the common, copy-free path
            return
        }
        hold(slice, at: UInt64(start), on: c, dir, frame: frame)
        drain(c, dir)
        enforceLimits(c, dir, frame: frame)
    }

    private func compareWithDelivered(_ c: TCPConnection, _ dir: Direction, _ bytes: WireBytes, at offset: UInt64, frame: FrameRef) {
        let conflict: Bool = c.withHalf(dir) { h in
            guard h.retainedValid, !h.ring.isEmpty else { return false }
            let size = UInt64(h.ring.count)
            let from = max(offset, h.next - UInt64(h.ringFilled))
            let to = offset + UInt64(bytes.count)
            guard from < to else { return false }
            // Ring positions are taken modulo its size; the segment's through the checked reader.
            for o in from..<to where h.ring[Int(o % size)] != bytes.u8(Int(o - offset)) { return true }
            return false
        }
        if conflict { reportConflict(c, dir, at: offset, frame: frame) }
    }

    private func reportConflict(_ c: TCPConnection, _ dir: Direction, at offset: UInt64, frame: FrameRef) {
        _statistics.overlapConflicts += 1
        sink.anomaly(Anomaly(kind: .overlapConflict, connection: c.id, direction: dir, frame: frame,
                             message: "retransmitted bytes at stream offset \(offset) differ from the first copy; the first copy was kept"))
    }

    /// Stores the parts of `bytes` not already held; compares the parts that are.
    private func hold(_ bytes: WireBytes, at offset: UInt64, on c: TCPConnection, _ dir: Direction, frame: FrameRef) {
        let end = offset + UInt64(bytes.count)
        var conflict = false
        var added = 0
        c.withHalf(dir) { h in
            var pieces: [HeldSegment] = []
            var cursor = offset
            for seg in h.held where seg.end > cursor && seg.offset < end {
                if seg.offset > cursor, let gap = bytes.slice(from: Int(cursor - offset), to: Int(seg.offset - offset)) {
                    pieces.append(HeldSegment(offset: cursor, bytes: Array(gap.buffer), frame: frame))
                }
                let from = max(cursor, seg.offset), to = min(end, seg.end)
                let differs = seg.bytes.withWireBytes { held in
                    guard let a = held.slice(from: Int(from - seg.offset), to: Int(to - seg.offset)),
                          let b = bytes.slice(from: Int(from - offset), to: Int(to - offset)) else { return false }
                    return !a.buffer.elementsEqual(b.buffer)
                }
                if differs { conflict = true }
                cursor = max(cursor, seg.end)
                if cursor >= end { break }
            }
            if cursor < end, let rest = bytes.suffix(from: Int(cursor - offset)) {
                pieces.append(HeldSegment(offset: cursor, bytes: Array(rest.buffer), frame: frame))
            }
            for p in pieces {
                added += p.bytes.count
                let i = h.held.firstIndex { $0.offset > p.offset } ?? h.held.count
                h.held.insert(p, at: i)
            }
            h.heldBytes += added
        }
        heldTotal += added
        _statistics.peakOutOfOrderBytes = max(_statistics.peakOutOfOrderBytes, heldTotal)
        if conflict { reportConflict(c, dir, at: offset, frame: frame) }
    }

    /// Delivers held segments that have become contiguous.
    private func drain(_ c: TCPConnection, _ dir: Direction) {
        while true {
            let first: HeldSegment? = c.withHalf(dir) { h in
                guard let f = h.held.first, f.offset <= h.next else { return nil }
                h.held.removeFirst()
                h.heldBytes -= f.bytes.count
                return f
            }
            guard let f = first else { return }
            heldTotal -= f.bytes.count
            let next = c.withHalf(dir) { $0.next }
            if f.end > next {
                f.bytes.withWireBytes { b in
                    if let rest = b.suffix(from: Int(next - f.offset)) { deliver(rest, at: next, on: c, dir, frame: f.frame) }
                }
            }
        }
    }

    private func deliver(_ bytes: WireBytes, at offset: UInt64, on c: TCPConnection, _ dir: Direction, frame: FrameRef) {
        let keep = limits.retainedBytesPerDirection
        c.withHalf(dir) { h in
            h.next = offset + UInt64(bytes.count)
            h.delivered += UInt64(bytes.count)
            if keep > 0 {
                if !h.retainedValid { h.ringFilled = 0; h.retainedValid = true }
                let needed = min(keep, h.ringFilled + bytes.count)
                if h.ring.count < needed { growRing(&h, to: needed, keep: keep, end: offset) }
                let size = h.ring.count
                // Copy the last min(n, size) bytes into the ring, in at most two pieces.
                let n = min(bytes.count, size)
                var src = bytes.count - n
                var pos = Int((h.next - UInt64(n)) % UInt64(size))
                h.ring.withUnsafeMutableBytes { ring in
                    var left = n
                    while left > 0 {
                        let run = min(left, size - pos)
                        bytes.slice(at: src, length: run)?.copy(into: ring, at: pos)
                        left -= run
                        src += run
                        pos = 0
                    }
                }
                h.ringFilled = min(keep, h.ringFilled + bytes.count)
            }
        }
        sink.streamData(c, dir, bytes.buffer, at: offset, frame: frame)
    }

    /// The ring grows with what a direction delivered (256 bytes, doubling, up to `keep`): a
    /// connection that sent a stream header holds a few hundred bytes, not `keep` (docs/LIMITS.md).
    /// The valid bytes, which end at stream offset `end`, keep their place modulo the new size.
    private func growRing(_ h: inout HalfStream, to needed: Int, keep: Int, end: UInt64) {
        var size = max(256, h.ring.count)
        while size < needed { size *= 2 }
        size = min(size, keep)
        var grown = [UInt8](repeating: 0, count: size)
        if h.ringFilled > 0 && !h.ring.isEmpty {
            // In runs that wrap in neither ring (at most three): a byte loop with two divisions
            // per byte cost 2 % of a whole analysis.
            let old = h.ring.count
            let filled = min(h.ringFilled, old, size)
            var o = end - UInt64(filled)
            h.ring.withUnsafeBytes { src in
                grown.withUnsafeMutableBytes { dst in
                    while o < end {
                        let si = Int(o % UInt64(old)), di = Int(o % UInt64(size))
                        let run = min(Int(end - o), old - si, size - di)
                        dst.baseAddress!.advanced(by: di).copyMemory(from: src.baseAddress!.advanced(by: si), byteCount: run)
                        o += UInt64(run)
                    }
                }
            }
        }
        _ringBytes += size - h.ring.count
        h.ring = grown
    }

    /// Declares everything below `limit` (or all held data when nil) final: holes become gaps.
    private func flush(_ c: TCPConnection, _ dir: Direction, upTo limit: UInt64?, frame: FrameRef) {
        while true {
            let (next, firstOffset) = c.withHalf(dir) { ($0.next, $0.held.first?.offset) }
            if let f = firstOffset, f < limit ?? .max {
                if f > next { gap(c, dir, at: next, length: f - next, frame: frame) }
                drain(c, dir)
                continue
            }
            if let limit, limit > next { gap(c, dir, at: next, length: limit - next, frame: frame) }
            return
        }
    }

    private func gap(_ c: TCPConnection, _ dir: Direction, at offset: UInt64, length: UInt64, frame: FrameRef) {
        let cutBySnapLength = c.withHalf(dir) { h in
            h.next = offset + length
            h.missing += length
            h.retainedValid = false
            return h.snapCutCovers(offset..<(offset + length))
        }
        _statistics.gaps += 1
        _statistics.gapBytes = _statistics.gapBytes.saturatingAdd(length)  // run-wide: no bound per connection helps
        sink.streamGap(c, dir, at: offset, length: length, frame: frame)
        if cutBySnapLength {
            // Not a loss: the capture kept only the start of those frames (counted with them).
            _statistics.snapLengthGaps += 1
            sink.snapLengthCut(c, dir, frame: frame, missing: length, gap: true)
        } else {
            sink.anomaly(Anomaly(kind: .gap, connection: c.id, direction: dir, frame: frame, bytes: length,
                                 message: "\(length) bytes missing at stream offset \(offset) (never captured); analysis resumes after the hole"))
        }
    }

    private func enforceLimits(_ c: TCPConnection, _ dir: Direction, frame: FrameRef) {
        while true {
            let (bytes, count) = c.withHalf(dir) { ($0.heldBytes, $0.held.count) }
            guard count > 0, bytes > limits.maxOutOfOrderBytesPerDirection
                || count > limits.maxOutOfOrderSegmentsPerDirection
                || heldTotal > limits.maxOutOfOrderBytesTotal else { return }
            _statistics.limitHits += 1
            if !c.limitReported {
                c.limitReported = true
                sink.anomaly(Anomaly(kind: .limitReached, connection: c.id, direction: dir, frame: frame,
                                     message: "out-of-order buffer full (\(bytes) bytes in \(count) segments held); the missing bytes are declared a gap"))
            }
            // Give up on the first hole: it becomes a gap and the held bytes behind it flow.
            let (next, first) = c.withHalf(dir) { ($0.next, $0.held.first?.offset ?? $0.next) }
            if first > next { gap(c, dir, at: next, length: first - next, frame: frame) }
            drain(c, dir)
        }
    }

    // MARK: - Closing, expiry, eviction

    /// `at`: when the analyzer decided (an idle timeout or an eviction is decided at a later
    /// packet's time, not at the connection's last frame).
    private func close(_ c: TCPConnection, reason: CloseReason, frame: FrameRef, at: Timestamp? = nil) {
        guard !c.isClosed else { return }
        c.closedAt = at ?? frame.time
        for d in Direction.allCases {
            let fin = c.withHalf(d) { $0.finOffset }
            flush(c, d, upTo: fin, frame: frame)
            checkFinished(c, d)
        }
        c._closeReason = reason
        if c.c2s.packets == 0 || c.s2c.packets == 0 {
            let seen: Direction = c.c2s.packets == 0 ? .serverToClient : .clientToServer
            sink.anomaly(Anomaly(kind: .oneSided, connection: c.id, direction: seen, frame: c.firstFrame,
                                 message: "only the \(seen.reportName) direction was captured"))
        }
        for d in Direction.allCases {
            c.withHalf(d) { h in
                heldTotal -= h.heldBytes
                h.held = []
                h.heldBytes = 0
                _ringBytes -= h.ring.count
                h.ring = []
                h.ringFilled = 0
            }
        }
        sink.connectionClosed(c)
    }

    private func remove(_ c: TCPConnection) {
        guard !c.removed else { return }
        c.removed = true
        table[FlowKey(c.client, c.server)] = nil
        if lastConnection === c { lastConnection = nil; lastKey = nil }
    }

    private func popQueue() -> TCPConnection? {
        guard queueHead < queue.count else { return nil }
        let c = queue[queueHead]
        queueHead += 1
        if queueHead > 4096 && queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        return c
    }

    /// Closes connections idle for longer than the timeout (capture time). Each connection sits
    /// in the queue once; one found still active is re-queued at its last activity, so the
    /// work is amortised O(1) per packet.
    public func expire(now: Timestamp) {
        while queueHead < queue.count {
            let c = queue[queueHead]
            if c.removed { _ = popQueue(); continue }
            let wait = c.isClosed ? limits.closedLingerSeconds : limits.idleTimeoutSeconds
            if now.secondsSince(c.lastSeen) > wait {
                _ = popQueue()
                if !c.isClosed { close(c, reason: .timeout, frame: c.lastFrame, at: now) }
                remove(c)
            } else if c.queuedAt < c.lastSeen {
                _ = popQueue()
                c.queuedAt = c.lastSeen
                queue.append(c)
            } else {
                return
            }
        }
    }

    /// Closes the least recently active connection early (its close reason is `evicted`), as the
    /// connection cap does; for a memory budget kept by the caller. False when none is left.
    @discardableResult
    public func evictLeastRecentlyActive(frame: FrameRef) -> Bool {
        evictOne(frame: frame, tableFull: false)
    }

    @discardableResult
    private func evictOne(frame: FrameRef, tableFull: Bool = true) -> Bool {
        var requeued = 0
        // The queue is in the order connections were queued, not of their last activity: those
        // requeued here go behind connections opened after they were last active. One such newer
        // connection, not active since it was queued, must not be taken for the least recently
        // active (it was a connection in its handshake, the newest of all): it goes behind them too.
        var oldestRequeued: Timestamp?
        while let c = popQueue() {
            if c.removed { continue }
            if requeued < table.count && (c.queuedAt < c.lastSeen || oldestRequeued.map { $0 < c.lastSeen } ?? false) {
                requeued += 1
                oldestRequeued = min(oldestRequeued ?? c.lastSeen, c.lastSeen)
                c.queuedAt = c.lastSeen
                queue.append(c)
                continue
            }
            _statistics.connectionsEvicted += 1
            if tableFull && !tableLimitReported {
                tableLimitReported = true
                sink.anomaly(Anomaly(kind: .limitReached, connection: c.id, frame: frame,
                                     message: "connection table full (\(limits.maxConnections) connections): the least recently active connections are closed early; see the statistics for how many"))
            }
            if !c.isClosed { close(c, reason: .evicted, frame: c.lastFrame, at: frame.time) }
            remove(c)
            return true
        }
        return false
    }

    /// Ends the capture: every connection still open is flushed and reported, in ID order.
    public func finish() {
        let open = table.values.filter { !$0.isClosed }.sorted { $0.id < $1.id }
        for c in open {
            // Closed only when both sides sent FIN; a half-closed connection is still open.
            close(c, reason: c.finSeen(.clientToServer) && c.finSeen(.serverToClient) ? .fin : .open, frame: c.lastFrame)
        }
    }
}
