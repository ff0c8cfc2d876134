#if canImport(Glibc)
import Glibc
#endif

/// The domains of the JIDs one stream's stanzas carry, normalised once per distinct raw domain
/// (#17: domains normalised once per distinct value). A server sends from its own few domains to
/// its peer's few, so nearly every stanza finds both of its domains here and costs a byte
/// comparison instead of a new `String` and its folding.
///
/// A handful of entries replaced in turn and compared byte for byte: nothing is hashed, so a peer
/// that sends ever new domains costs one miss per JID, never a longer search.
public struct JIDDomainCache {
    public static let capacity = 4
    /// Longer parts (no DNS name is) are answered without being kept: a connection's cache holds
    /// at most `capacity` × this many bytes per direction, whatever its peer sends.
    public static let maxPartBytes = 255

    private struct Entry {
        /// The domain part as sent (the bytes `jidDomain` reads).
        var raw: [UInt8]
        var domain: String?
    }

    private var entries: [Entry] = []
    private var next = 0
    /// What the entries hold (`retainedBytes`): at most `capacity` × (`maxPartBytes` × 2 + 48).
    public private(set) var retainedBytes = 0

    private static func retainedBytes(_ e: Entry) -> Int { 48 + e.raw.count + (e.domain?.utf8.count ?? 0) }

    public init() {}

    /// `jidDomain(jid)`, from the cache when this domain part was seen before.
    public mutating func domain(ofJID jid: String) -> String? {
        var jid = jid
        return jid.withUTF8 { u -> String? in
            let (start, end) = jidDomainBounds(u)
            let part = UnsafeBufferPointer(rebasing: u[start..<end])
            for e in entries where e.raw.count == part.count {
                if part.isEmpty || e.raw.withUnsafeBufferPointer({ memcmp($0.baseAddress!, part.baseAddress!, part.count) == 0 }) {
                    return e.domain
                }
            }
            // `jidDomain` reads nothing but this part: its answer is the part's.
            let domain = jidDomain(part)
            guard part.count <= Self.maxPartBytes else { return domain }
            let entry = Entry(raw: Array(part), domain: domain)
            retainedBytes += Self.retainedBytes(entry)
            if entries.count < Self.capacity {
                entries.append(entry)
            } else {
                retainedBytes -= Self.retainedBytes(entries[next])
                entries[next] = entry
                next = (next + 1) % Self.capacity
            }
            return domain
        }
    }
}
