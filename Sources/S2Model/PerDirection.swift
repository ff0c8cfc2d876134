/// One value per direction of a connection, addressed by `Direction` instead of `[0]`/`[1]`.
public struct PerDirection<Value> {
    public var clientToServer: Value
    public var serverToClient: Value

    public init(_ clientToServer: Value, _ serverToClient: Value) {
        self.clientToServer = clientToServer
        self.serverToClient = serverToClient
    }

    public init(repeating value: Value) {
        self.init(value, value)
    }

    // `_modify` yields the stored value in place: with a plain get/set, `x[d].insert(e)` on a Set or
    // Dictionary from another module copies the whole collection (get), mutates the copy and writes it
    // back — O(n) per insert, which a peer that piggybacks thousands of requests turns quadratic.
    @inlinable
    public subscript(_ d: Direction) -> Value {
        _read { if d == .clientToServer { yield clientToServer } else { yield serverToClient } }
        _modify { if d == .clientToServer { yield &clientToServer } else { yield &serverToClient } }
    }
}

extension PerDirection: Sendable where Value: Sendable {}
extension PerDirection: Equatable where Value: Equatable {}
extension PerDirection: Hashable where Value: Hashable {}

/// Why part of what a rule needs was never observed. A rule whose evidence could lie there stays
/// silent, and the report counts it under `not_judged` with this reason (REPORT.md).
public enum Unobserved: String, Sendable, CaseIterable, Comparable {
    /// The capture began after the stream started: its header, features and dialback were before it.
    case midstream
    /// Bytes of the stream were lost (kernel drops, capture gaps).
    case gap
    /// TLS hid the content (no key log).
    case encrypted
    /// The capture ended before the reaction was due.
    case captureEnded = "capture-ended"
    /// The analyzer stopped watching the connection (idle timeout, eviction under a limit): not a close on the wire.
    case unwatched
    /// A bound of S2Scope's state was reached (pending requests, awaited reactions): the occasion was not tracked.
    case limit
    /// A request reused the id of one still pending: which one a reply answers cannot be told.
    case reusedID = "reused-id"

    public static func < (a: Unobserved, b: Unobserved) -> Bool { a.rawValue < b.rawValue }
}
