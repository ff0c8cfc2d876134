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

    @inline(__always)
    public subscript(_ d: Direction) -> Value {
        get { d == .clientToServer ? clientToServer : serverToClient }
        set { if d == .clientToServer { clientToServer = newValue } else { serverToClient = newValue } }
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

    public static func < (a: Unobserved, b: Unobserved) -> Bool { a.rawValue < b.rawValue }
}
