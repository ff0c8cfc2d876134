#if canImport(Glibc)
import Glibc
#endif
import S2Model

/// An anonymous temporary file in `$TMPDIR` (default /tmp), gone when it is closed or the process
/// ends. glibc's `tmpfile` ignores `TMPDIR`; where /tmp is a tmpfs (in memory), the user needs a way
/// to put an offline run's history on a disk.
func anonymousTemporaryFile(in directory: String? = nil) -> UnsafeMutablePointer<FILE>? {
    let dir = directory ?? getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    // O_TMPFILE is a C macro Swift does not import: __O_TMPFILE | O_DIRECTORY, as on x86-64 and
    // arm64 (where it differs, the open fails and the fallback below runs).
    let tmpFile: Int32 = 0o20_000_000 | O_DIRECTORY
    var fd = open(dir, O_RDWR | tmpFile | O_EXCL, 0o600)
    if fd < 0 {
        // Without O_TMPFILE (an old kernel, some file systems): a named file, unlinked at once.
        var template = Array((dir + "/s2scope-XXXXXX").utf8CString)
        fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { return nil }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    }
    guard let f = fdopen(fd, "w+") else {
        close(fd)
        return nil
    }
    return f
}

/// Fixed-width slots (0 = empty) of an index that grows with the capture: in the heap, or, for
/// an offline run's indexes of its whole history, in an anonymous temporary file behind a few
/// cached pages. On disk the heap holds 32 KiB per index however long the capture; the kernel
/// keeps the file in its page cache, which it can reclaim. If the file fails (a full disk), the
/// slots are read back into the heap and nothing is lost.
final class SlotStore {
    private(set) var count: Int
    /// In the heap: every slot. On disk: the cached pages, frame after frame.
    private var memory: [UInt64]
    private var file: UnsafeMutablePointer<FILE>?
    private var fd: Int32 = -1
    private var cachedPage: [Int] = []
    private var dirty: [Bool] = []
    private static let pageSlots = 64
    private static let pageBytes = pageSlots * MemoryLayout<UInt64>.size
    private static let frames = 64

    /// The file is made at the first access (most indexes of short runs and tests stay empty).
    private var fileWanted: Bool

    init(count: Int, onDisk: Bool) {
        self.count = count
        fileWanted = onDisk
        memory = onDisk ? [] : [UInt64](repeating: 0, count: count)
    }

    private func openFile() {
        fileWanted = false
        guard let f = anonymousTemporaryFile() else {
            memory = [UInt64](repeating: 0, count: count)
            return
        }
        file = f
        fd = fileno(f)
        memory = [UInt64](repeating: 0, count: Self.frames * Self.pageSlots)
        cachedPage = [Int](repeating: -1, count: Self.frames)
        dirty = [Bool](repeating: false, count: Self.frames)
    }

    deinit { if let file { fclose(file) } }

    var isOnDisk: Bool { file != nil || fileWanted }

    subscript(i: Int) -> UInt64 {
        get { memory[index(i)] }
        set {
            let at = index(i)
            memory[at] = newValue
            if file != nil { dirty[at / Self.pageSlots] = true }
        }
    }

    /// More slots, empty (on disk: a longer sparse file, nothing written).
    func grow(to n: Int) {
        guard n > count else { return }
        if file == nil && !fileWanted { memory.append(contentsOf: repeatElement(0, count: n - count)) }
        count = n
    }

    /// Where slot `i` is in `memory`, its page brought into the cache first.
    private func index(_ i: Int) -> Int {
        if fileWanted { openFile() }
        guard file != nil else { return i }
        let page = i / Self.pageSlots
        let frame = page % Self.frames
        if cachedPage[frame] != page {
            guard !dirty[frame] || write(frame), read(page, into: frame) else {
                moveToMemory()
                return i
            }
            cachedPage[frame] = page
            dirty[frame] = false
        }
        return frame * Self.pageSlots + i % Self.pageSlots
    }

    private func write(_ frame: Int) -> Bool {
        let n = memory.withUnsafeBytes { b in
            pwrite(fd, b.baseAddress! + frame * Self.pageBytes, Self.pageBytes, off_t(cachedPage[frame] * Self.pageBytes))
        }
        return n == Self.pageBytes
    }

    /// A page past the end of the file (never written) reads as empty slots.
    private func read(_ page: Int, into frame: Int) -> Bool {
        memory.withUnsafeMutableBytes { b in
            let base = b.baseAddress! + frame * Self.pageBytes
            let n = pread(fd, base, Self.pageBytes, off_t(page * Self.pageBytes))
            guard n >= 0 else { return false }
            if n < Self.pageBytes { memset(base + n, 0, Self.pageBytes - n) }
            return true
        }
    }

    private func moveToMemory() {
        var all = [UInt64](repeating: 0, count: count)
        for page in 0..<((count + Self.pageSlots - 1) / Self.pageSlots) {
            let frame = page % Self.frames
            let base = page * Self.pageSlots
            let n = min(Self.pageSlots, count - base)
            if cachedPage[frame] == page {
                for k in 0..<n { all[base + k] = memory[frame * Self.pageSlots + k] }
            } else {
                var buffer = [UInt64](repeating: 0, count: Self.pageSlots)
                _ = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Self.pageBytes, off_t(page * Self.pageBytes)) }
                for k in 0..<n { all[base + k] = buffer[k] }
            }
        }
        if let file { fclose(file) }
        file = nil
        memory = all
    }
}

/// Values by a hash of what they stand for, which the caller confirms on read.
///
/// What the cross-connection rules look up over a whole capture grows with its connections, so
/// each entry costs one 8-byte slot (open addressing, linear probing, at most ¾ full): the top
/// 24 bits of the hash beside a value below 2⁴⁰; offline, the slots are on disk (`SlotStore`).
/// Two hashes that share their top bits both answer; the caller's confirmation (against the
/// archive) sorts them out. All values of one hash sit in one probe run, which every insert there
/// walks: callers keep few values per hash (`DialbackModel` keeps two per stream id at most, one
/// per binding), or inserts grow quadratic.
final class HashIndex {
    private let onDisk: Bool
    private var slots: SlotStore?
    private var capacity: Int { slots?.count ?? 0 }
    private(set) var count = 0
    static let maxValue = (1 << 40) - 1
    private static let valueMask = UInt64(maxValue)

    init(onDisk: Bool = false) { self.onDisk = onDisk }

    private static func tag(_ hash: Int) -> UInt64 {
        let t = UInt64(UInt(bitPattern: hash) >> (UInt.bitWidth - 24)) & 0xFF_FFFF
        return t == 0 ? 1 : t
    }

    private var mask: Int { capacity - 1 }

    private func home(_ tag: UInt64) -> Int { Int(truncatingIfNeeded: tag &* 0x9E37_79B9_7F4A_7C15 >> 32) & mask }

    /// A value outside 0…`maxValue` is not indexed (no connection or exchange number gets there).
    func insert(_ v: Int, at hash: Int) {
        guard v >= 0, v <= Self.maxValue else { return }
        if (count + 1) * 4 > capacity * 3 { grow() }
        place(Self.tag(hash) << 40 | UInt64(v), in: slots!)
        count += 1
    }

    private func place(_ slot: UInt64, in s: SlotStore) {
        let mask = s.count - 1
        var i = Int(truncatingIfNeeded: (slot >> 40) &* 0x9E37_79B9_7F4A_7C15 >> 32) & mask
        while s[i] != 0 { i = (i + 1) & mask }
        s[i] = slot
    }

    private func grow() {
        let bigger = SlotStore(count: max(64, capacity * 2), onDisk: onDisk)
        if let old = slots {
            for i in 0..<old.count where old[i] != 0 { place(old[i], in: bigger) }
        }
        slots = bigger
    }

    /// The values inserted at `hash` (and at hashes sharing its tag), in no particular order.
    subscript(hash: Int) -> [Int] {
        guard count > 0, let slots else { return [] }
        let t = Self.tag(hash)
        var out: [Int] = []
        var i = home(t)
        while slots[i] != 0 {
            if slots[i] >> 40 == t { out.append(Int(slots[i] & Self.valueMask)) }
            i = (i + 1) & mask
        }
        return out
    }

    func remove(_ v: Int, at hash: Int) {
        guard count > 0, let slots, v >= 0, v <= Self.maxValue else { return }
        let wanted = Self.tag(hash) << 40 | UInt64(v)
        var hole = home(wanted >> 40)
        while slots[hole] != wanted {
            if slots[hole] == 0 { return }
            hole = (hole + 1) & mask
        }
        // Backward shift: later slots of the run move into the hole unless that would put them
        // before their home; no tombstones, so lookups never slow down with removals.
        var j = (hole + 1) & mask
        while slots[j] != 0 {
            let h = home(slots[j] >> 40)
            if (j - h) & mask >= (j - hole) & mask {
                slots[hole] = slots[j]
                hole = j
            }
            j = (j + 1) & mask
        }
        slots[hole] = 0
        count -= 1
    }
}

/// Where records of a `RecordFile` are, by a small dense number (connection ID, exchange
/// number, registry entry): one 8-byte slot per number (on disk offline) instead of a
/// dictionary entry.
final class RecordOffsets {
    /// offset << 24 | length; 0 = no record.
    private let packed: SlotStore
    /// Records that do not pack (a length of 16 MiB or more, an offset past 1 TiB, a number past
    /// `maxDense`).
    private var large: [Int: RecordFile.Record] = [:]
    private(set) var count = 0
    private static let maxDense = 1 << 26

    init(onDisk: Bool) { packed = SlotStore(count: 0, onDisk: onDisk) }

    subscript(n: Int) -> RecordFile.Record? {
        get {
            if n >= 0, n < packed.count {
                let p = packed[n]
                if p != 0 { return (Int64(p >> 24), Int(p & 0xFF_FFFF)) }
            }
            return large[n]
        }
        set {
            if self[n] != nil { count -= 1 }
            if n >= 0, n < packed.count { packed[n] = 0 }
            large[n] = nil
            guard let r = newValue else { return }
            count += 1
            if n >= 0, n < Self.maxDense, r.length > 0, r.length < 1 << 24, r.offset >= 0, r.offset < 1 << 40 {
                if n >= packed.count { packed.grow(to: max(n + 1, packed.count * 2, 64)) }
                packed[n] = UInt64(r.offset) << 24 | UInt64(r.length)
            } else {
                large[n] = r
            }
        }
    }

    /// Every number with a record, ascending.
    var numbers: [Int] {
        var out: [Int] = []
        for n in 0..<packed.count where packed[n] != 0 { out.append(n) }
        if !large.isEmpty { out = (out + large.keys).sorted() }
        return out
    }
}

/// Entries written once and found again by a hash of what they stand for: a registry of the
/// whole capture (dialback keys, issued stream ids) that an offline run keeps on disk, with only
/// its `HashIndex` and offsets in memory. Without a file (a live run, or no temporary file) the
/// entries stay in memory.
final class RecordIndex<Entry> {
    private let encode: (Entry, inout [UInt8]) -> Void
    private let decode: (inout ArchiveCoder.Reader) -> Entry?
    private let file: RecordFile?
    private let offsets: RecordOffsets
    private var held: [Int: Entry] = [:]
    private let byHash: HashIndex
    private var scratch: [UInt8] = []
    private(set) var count = 0

    init(onDisk: Bool, encode: @escaping (Entry, inout [UInt8]) -> Void,
         decode: @escaping (inout ArchiveCoder.Reader) -> Entry?) {
        self.encode = encode
        self.decode = decode
        file = onDisk ? RecordFile() : nil
        offsets = RecordOffsets(onDisk: onDisk)
        byHash = HashIndex(onDisk: onDisk)
    }

    func insert(_ e: Entry, hash: Int) {
        let n = count
        count += 1
        byHash.insert(n, at: hash)
        if let file {
            scratch.removeAll(keepingCapacity: true)
            encode(e, &scratch)
            if let w = file.append(scratch) {
                offsets[n] = w
                return
            }
        }
        held[n] = e
    }

    /// Entries inserted at `hash` (and, rarely, at hashes sharing its tag), oldest first.
    func entries(hash: Int) -> [Entry] {
        byHash[hash].sorted().compactMap { n in
            if let e = held[n] { return e }
            guard let w = offsets[n], let bytes = file?.read(w) else { return nil }
            return bytes.withWireBytes { b in
                var r = ArchiveCoder.Reader(wire: WireReader(b))
                return decode(&r)
            }
        }
    }
}

/// The first use of each dialback key in db:result requests (DB-RES-2's key registry): a key is
/// bound to one stream id and domain pair, so a later use elsewhere is a reuse. Offline, the uses
/// are kept on disk (see `RecordIndex`).
public final class DialbackKeyRegistry {
    public struct Use: Equatable, Sendable {
        public var key: String
        public var streamID: String?
        public var pair: DomainPair
        public var connection: ConnectionID
        public init(key: String, streamID: String?, pair: DomainPair, connection: ConnectionID) {
            self.key = key
            self.streamID = streamID
            self.pair = pair
            self.connection = connection
        }
    }

    private let uses: RecordIndex<Use>
    /// Keys remembered at most; past it, new keys are not (their reuse goes unseen).
    public let limit: Int

    public init(onDisk: Bool, limit: Int = 100_000) {
        self.limit = limit
        uses = RecordIndex(onDisk: onDisk, encode: { u, o in
            ArchiveCoder.str(u.key, &o)
            ArchiveCoder.opt(u.streamID, &o)
            ArchiveCoder.str(u.pair.sender, &o)
            ArchiveCoder.str(u.pair.target, &o)
            ArchiveCoder.int(u.connection.value, &o)
        }, decode: { r in
            guard let key = r.str(), let streamID = r.opt(), let sender = r.str(), let target = r.str(),
                  let connection = r.int() else { return nil }
            return Use(key: key, streamID: streamID, pair: DomainPair(sender: sender, target: target),
                       connection: ConnectionID(connection))
        })
    }

    public var count: Int { uses.count }

    public func firstUse(of key: String) -> Use? { firstUse(of: key, hash: key.hashValue) }

    private func firstUse(of key: String, hash: Int) -> Use? {
        uses.entries(hash: hash).first { $0.key == key }
    }

    /// The earlier use of `use`'s key, if any; otherwise `use` is recorded (within `limit`) and
    /// the answer is nil. One lookup for both.
    public func firstUse(recording use: Use) -> Use? {
        let h = use.key.hashValue
        if let earlier = firstUse(of: use.key, hash: h) { return earlier }
        if uses.count < limit { uses.insert(use, hash: h) }
        return nil
    }
}

/// The stream ids each server issued, with the first connection that carried each (STREAM-HDR-9).
final class IssuedStreamIDs {
    private struct Issue {
        var address: String
        var id: String
        var connection: ConnectionID
    }

    private let issues: RecordIndex<Issue>

    init(onDisk: Bool) {
        issues = RecordIndex(onDisk: onDisk, encode: { i, o in
            ArchiveCoder.str(i.address, &o)
            ArchiveCoder.str(i.id, &o)
            ArchiveCoder.int(i.connection.value, &o)
        }, decode: { r in
            guard let address = r.str(), let id = r.str(), let connection = r.int() else { return nil }
            return Issue(address: address, id: id, connection: ConnectionID(connection))
        })
    }

    var count: Int { issues.count }

    private static func hash(_ address: String, _ id: String) -> Int {
        var h = Hasher()
        h.combine(address)
        h.combine(id)
        return h.finalize()
    }

    func firstConnection(issuing id: String, at address: String) -> ConnectionID? {
        firstConnection(issuing: id, at: address, hash: Self.hash(address, id))
    }

    private func firstConnection(issuing id: String, at address: String, hash: Int) -> ConnectionID? {
        issues.entries(hash: hash).first { $0.address == address && $0.id == id }?.connection
    }

    /// Records that `connection` carried `id` from `address`, unless an earlier one did.
    func record(_ id: String, at address: String, on connection: ConnectionID) {
        let h = Self.hash(address, id)
        guard firstConnection(issuing: id, at: address, hash: h) == nil else { return }
        issues.insert(Issue(address: address, id: id, connection: connection), hash: h)
    }
}
