import Testing
@Test func hostileTestsPlaceholder() { #expect(Bool(true)) }
