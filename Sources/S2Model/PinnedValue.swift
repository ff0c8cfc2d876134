/// A value kept at a fixed address its owner alone reaches, for the per-flow state the hot path
/// mutates in place.
///
/// A stored `var` of a class is checked for exclusive access at run time wherever the optimizer
/// cannot prove that no access overlaps another, and it cannot when an array in the value grows
/// inside the access (that calls into the runtime): about 90 instructions per access, on every
/// packet and element. Through a pinned value the owner addresses the state with a pointer
/// (`unsafeAddress` / `unsafeMutableAddress` accessors), which is not checked: the owner keeps the
/// discipline the check would have enforced, one access at a time (docs/PIPELINE.md).
public struct PinnedValue<Value>: ~Copyable {
    /// The first value; the others (`init(repeating:count:)`) follow it.
    public let pointer: UnsafeMutablePointer<Value>
    private let count: Int

    public init(_ value: Value) { self.init(repeating: value, count: 1) }

    /// `count` values in one allocation.
    public init(repeating value: Value, count: Int) {
        precondition(count > 0)
        self.count = count
        pointer = .allocate(capacity: count)
        pointer.initialize(repeating: value, count: count)
    }

    deinit {
        pointer.deinitialize(count: count)
        pointer.deallocate()
    }
}
