#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import S2Model

/// Follows an NSS key log that a server keeps appending to (`tail -F` for secrets): each `poll`
/// returns the complete lines added since the last one. The file may not exist yet or be empty
/// (the servers write it when their first TLS session starts), may be truncated (reading starts
/// over) or replaced, as log rotation does (the new file is read from its start).
///
/// Polling, not inotify: the live loop wakes at least every 200 ms anyway, a `stat` per wake is
/// cheap, and polling also sees files on filesystems without inotify (NFS, some overlays).
public final class KeyLogFollower {
    public let path: String
    /// Lines read so far that carried a secret, and lines that did not parse.
    public private(set) var linesRead = 0
    public private(set) var malformedLines = 0
    /// Bytes read per poll at most, so that a large existing key log does not stall the capture.
    public var maxBytesPerPoll = 4 << 20
    /// A line longer than this is not an NSS key log line (the longest, TLS 1.3 with SHA-384,
    /// is about 160 bytes): it is skipped to its end.
    static let maxLineLength = 4096

    private var fd: Int32 = -1
    private var identity: (dev: UInt64, ino: UInt64)?
    private var offset: Int64 = 0
    private var partial: [UInt8] = []
    private var skippingLongLine = false
    private var told: Set<String> = []

    public init(path: String) {
        self.path = path
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Whether the file is open now.
    public var isOpen: Bool { fd >= 0 }

    /// The secrets of the complete lines appended since the last poll, and what the operator
    /// should know (each said once: the file is missing, unreadable, readable by others, was
    /// truncated or replaced).
    public func poll() -> (secrets: KeyLog, notes: [String]) {
        var notes: [String] = []
        var st = stat()
        if stat(path, &st) != 0 {
            let why = String(cString: strerror(errno))
            if fd < 0 {
                once(&notes, "missing", "\(path): the key log does not exist yet (\(why)); waiting for it to appear")
                return (KeyLog(), notes)
            }
            // Removed while open (rotation in progress): finish reading what the old file had.
        } else if fd >= 0, let id = identity, (UInt64(st.st_dev), UInt64(st.st_ino)) != id {
            // Replaced: read the rest of the old file, then start on the new one.
            var out = readAppended(&notes)
            close(fd)
            fd = -1
            partial = []
            skippingLongLine = false
            notes.append("\(path): the key log was replaced (rotated); reading the new file from its start")
            told.remove("mode")
            let next = poll()
            out.merge(next.secrets)
            return (out, notes + next.notes)
        }
        if fd < 0 {
            let f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            guard f >= 0 else {
                once(&notes, "open", "\(path): cannot read the key log (\(String(cString: strerror(errno)))); retrying")
                return (KeyLog(), notes)
            }
            var fst = stat()
            guard fstat(f, &fst) == 0, (fst.st_mode & S_IFMT) == S_IFREG else {
                close(f)
                once(&notes, "type", "\(path): the key log is not a regular file; not reading it")
                return (KeyLog(), notes)
            }
            fd = f
            identity = (UInt64(fst.st_dev), UInt64(fst.st_ino))
            offset = 0
            told.remove("missing")
            told.remove("open")
            checkMode(fst.st_mode, &notes)
        }
        return (readAppended(&notes), notes)
    }

    private func checkMode(_ mode: mode_t, _ notes: inout [String]) {
        if mode & (S_IRWXG | S_IRWXO) != 0 {
            once(&notes, "mode", "\(path): WARNING: the key log can be read by users other than its owner (mode \(String(mode & 0o777, radix: 8))); anyone who reads it can decrypt every TLS session it covers — make it 0600")
        }
    }

    private func readAppended(_ notes: inout [String]) -> KeyLog {
        var log = KeyLog()
        guard fd >= 0 else { return log }
        var fst = stat()
        if fstat(fd, &fst) == 0 {
            checkMode(fst.st_mode, &notes)
            if Int64(fst.st_size) < offset {
                notes.append("\(path): the key log was truncated; reading it again from its start")
                offset = 0
                partial = []
                skippingLongLine = false
            }
        }
        var budget = maxBytesPerPoll
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while budget > 0 {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, min($0.count, budget), off_t(offset)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            offset += Int64(n)
            budget -= n
            buffer.withWireBytes { scan($0.prefix(n), into: &log) }
        }
        return log
    }

    private func scan(_ bytes: WireBytes, into log: inout KeyLog) {
        var start = 0
        while let nl = bytes.firstOffset(of: 10, from: start) {
            if skippingLongLine {
                skippingLongLine = false
            } else {
                partial.append(contentsOf: bytes.dropFirst(start).prefix(nl - start).buffer)
                line(&log)
            }
            partial.removeAll(keepingCapacity: true)
            start = nl + 1
        }
        guard !skippingLongLine else { return }
        partial.append(contentsOf: bytes.dropFirst(start).buffer)
        if partial.count > KeyLogFollower.maxLineLength {
            malformedLines += 1
            partial.removeAll()
            skippingLongLine = true
        }
    }

    private func line(_ log: inout KeyLog) {
        let before = log.malformedLines
        log.add(line: Substring(String(decoding: partial, as: UTF8.self)))
        if log.malformedLines > before { malformedLines += 1 } else { linesRead += 1 }
    }

    private func once(_ notes: inout [String], _ key: String, _ text: String) {
        if told.insert(key).inserted { notes.append(text) }
    }
}
