#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import S2Model

/// The capture files an `analyze` command line names: files as given, and the captures found in
/// directories (with `recursive`), ordered by the time of their first packet — the order of a
/// `tcpdump -G`/`-C` rotation, whose names (`s2s.pcap9`, `s2s.pcap10`) need not sort that way.
public enum CaptureFiles {
    /// What a directory walk found.
    public struct Expansion: Sendable {
        public var files: [String] = []
        /// Regular files in the directories that are not pcap/pcapng captures (by their magic number).
        public var skipped = 0
        /// Subdirectories not entered: hidden ones (`.git`), symbolic links, and those past `maxDepth`.
        public var directoriesNotEntered = 0
    }

    /// Directories deeper than this below an argument are not entered.
    public static let maxDepth = 32
    /// At most this many files are taken from directories (the rest is an error, not a silent cut).
    public static let maxFiles = 100_000

    /// Expands `arguments`: a file (or `-`) stays where it is; a directory becomes the captures
    /// in it and, with `recursive`, in its subdirectories, in the order of their first packet.
    /// Throws when a directory is given without `recursive`, or when a path cannot be read.
    public static func expand(_ arguments: [String], recursive: Bool) throws -> Expansion {
        var out = Expansion()
        for a in arguments {
            guard a != "-", isDirectory(a) else {
                out.files.append(a)
                continue
            }
            guard recursive else {
                throw CaptureError("\(a): is a directory; give --recursive to analyse the pcap/pcapng captures in it (and below)")
            }
            var found: [String] = []
            try walk(a, depth: 0, into: &found, expansion: &out)
            out.files += try orderedByFirstPacket(found)
        }
        return out
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    private static func walk(_ dir: String, depth: Int, into found: inout [String], expansion: inout Expansion) throws {
        guard let d = opendir(dir) else { throw CaptureError("\(dir): \(String(cString: strerror(errno)))") }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        for name in names.sorted() {
            let path = dir.hasSuffix("/") ? dir + name : dir + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            let kind = st.st_mode & S_IFMT
            if kind == S_IFLNK {
                // A link to a file is followed; a link to a directory is not (no loops).
                if isDirectory(path) { expansion.directoriesNotEntered += 1; continue }
                guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            } else if kind == S_IFDIR {
                if name.hasPrefix(".") || depth + 1 > maxDepth { expansion.directoriesNotEntered += 1; continue }
                try walk(path, depth: depth + 1, into: &found, expansion: &expansion)
                continue
            } else if kind != S_IFREG {
                continue
            }
            if isCapture(path) {
                found.append(path)
                if found.count > maxFiles { throw CaptureError("\(dir): more than \(maxFiles) capture files; analyse fewer at once") }
            } else {
                expansion.skipped += 1
            }
        }
    }

    /// Whether the file starts with a pcap (either byte order, micro- or nanosecond) or pcapng
    /// (section header block) magic number.
    public static func isCapture(_ path: String) -> Bool {
        guard let f = fopen(path, "rb") else { return false }
        defer { fclose(f) }
        var magic = [UInt8](repeating: 0, count: 4)
        guard fread(&magic, 1, 4, f) == 4 else { return false }
        let known: [[UInt8]] = [[0xd4, 0xc3, 0xb2, 0xa1], [0xa1, 0xb2, 0xc3, 0xd4], [0x4d, 0x3c, 0xb2, 0xa1],
                                [0xa1, 0xb2, 0x3c, 0x4d], [0x0a, 0x0d, 0x0d, 0x0a]]
        return known.contains(magic)
    }

    /// `paths` by the time of their first packet; files without one come last, by path.
    /// Throws when one cannot be read as a capture.
    public static func orderedByFirstPacket(_ paths: [String]) throws -> [String] {
        var keyed: [(path: String, first: Timestamp?)] = []
        for p in paths {
            let r = try PcapFileReader(path: p, inputIndex: 0)
            var first: Timestamp?
            _ = r.read { packet in
                first = packet.frame.time
                return false
            }
            keyed.append((p, first))
        }
        return keyed.sorted { a, b in
            switch (a.first, b.first) {
            case let (x?, y?): return x != y ? x < y : a.path < b.path
            case (_?, nil): return true
            case (nil, _?): return false
            case (nil, nil): return a.path < b.path
            }
        }.map(\.path)
    }
}
