import S2Dialback
import S2Model
import S2Rules

/// One dialback exchange as an inline SVG sequence diagram: three lanes (originating, receiving,
/// authoritative server, each labelled with its domain and the address seen on the wire) and one
/// arrow per step (db:result, db:verify, db:verify reply, db:result reply) labelled with the
/// element, the time since the first step, the frame and the connection. Violations found on a
/// step's frame and connection are marked on its arrow (a dot, rule ID and tooltip), coloured
/// by severity as everywhere in the page: an arrow with only an info note is grey, never red.
///
/// Built with `HTMLBuilder`: every string that came off the wire is escaped, in text and attributes alike.
public struct SequenceDiagram {
    public var exchange: DialbackExchange
    public var violations: [Violation]
    /// Whether to print `input N` next to frame numbers (several inputs).
    public var showInput: Bool

    public init(exchange: DialbackExchange, violations: [Violation], showInput: Bool = false) {
        self.exchange = exchange
        self.violations = violations
        self.showInput = showInput
    }

    static let laneX = [150, 450, 750]
    static let width = 1120
    static let markColumn = 905

    /// The steps in capture order.
    public var orderedSteps: [DialbackStep] {
        exchange.steps.enumerated().sorted {
            ($0.element.frame.input, $0.element.frame.number, $0.offset) < ($1.element.frame.input, $1.element.frame.number, $1.offset)
        }.map(\.element)
    }

    /// Violations on the frame and connection of `step`.
    public func violations(on step: DialbackStep) -> [Violation] {
        violations.filter { $0.connection == step.connection && $0.frame.input == step.frame.input && $0.frame.number == step.frame.number }
    }

    /// The lanes an arrow of `kind` runs between (0 originating, 1 receiving, 2 authoritative).
    static func lanes(_ kind: DialbackStep.Kind) -> (Int, Int) {
        switch kind {
        case .resultRequest: return (0, 1)
        case .verifyRequest: return (1, 2)
        case .verifyReply: return (2, 1)
        case .resultReply: return (1, 0)
        }
    }

    public func render() -> String {
        var h = HTMLBuilder()
        render(into: &h)
        return h.output
    }

    public func render(into h: inout HTMLBuilder) {
        let x = exchange
        let steps = orderedSteps
        let base = steps.map(\.frame.time).min() ?? x.resultFrame.time
        let rowHeights = steps.map { 64 + max(0, violations(on: $0).count - 2) * 15 }
        let top = 96
        let height = top + rowHeights.reduce(0, +) + 24
        let W = SequenceDiagram.width
        h.element("svg", ["class": "seq", "xmlns": "http://www.w3.org/2000/svg", "width": "\(W)", "height": "\(height)",
                          "viewBox": "0 0 \(W) \(height)", "role": "img",
                          "aria-label": "dialback exchange \(x.id): \(x.originating) to \(x.receiving), outcome \(x.outcomeName)",
                          "data-exchange": x.id]) { h in
            h.element("title", text: "\(x.id): \(x.originating) → \(x.receiving) (\(x.outcomeName))")

            // Lanes: header boxes and lifelines.
            let lanes: [(String, String, String?)] = [
                ("originating server", x.originating, x.originatingAddress),
                ("receiving server", x.receiving, x.receivingAddress),
                ("authoritative server", x.originating, x.authoritativeAddress),
            ]
            for (i, lane) in lanes.enumerated() {
                let cx = SequenceDiagram.laneX[i]
                h.element("g", ["class": lane.2 != nil ? "lane" : "lane unseen", "data-lane": "\(i)"]) { h in
                    h.element("title", text: "\(lane.0): \(lane.1) at \(lane.2 ?? "not seen (no db:verify observed)")")
                    h.empty("rect", ["x": "\(cx - 135)", "y": "8", "width": "270", "height": "62", "rx": "6", "class": "lanebox"])
                    h.element("text", ["x": "\(cx)", "y": "26", "class": "role", "text-anchor": "middle"], text: lane.0)
                    h.element("text", ["x": "\(cx)", "y": "44", "class": "domain", "text-anchor": "middle"], text: clip(lane.1, 36))
                    h.element("text", ["x": "\(cx)", "y": "61", "class": "addr", "text-anchor": "middle"], text: clip(lane.2 ?? "not seen", 40))
                    h.empty("line", ["x1": "\(cx)", "y1": "70", "x2": "\(cx)", "y2": "\(height - 8)", "class": "lifeline"])
                }
            }
            h.element("text", ["x": "\(SequenceDiagram.markColumn)", "y": "26", "class": "role"], text: "violations on this step")

            var y = top
            for (i, step) in steps.enumerated() {
                let (from, to) = SequenceDiagram.lanes(step.kind)
                let x1 = SequenceDiagram.laneX[from], x2 = SequenceDiagram.laneX[to]
                let dir = x2 > x1 ? 1 : -1
                let ay = y + 20
                let found = violations(on: step)
                let offset = step.frame.time.secondsSince(base)
                let frameText = "frame \(step.frame.number)" + (showInput ? " of input \(step.frame.input)" : "")
                let reply = step.type.map { " type=\($0)" } ?? ""
                // A flagged arrow takes the colour of its most severe finding (an info note is not red).
                let worst = found.map(\.severity).max()
                h.element("g", ["class": worst.map { "step flagged sx-\($0.name)" } ?? "step", "data-kind": step.kind.rawValue,
                                "data-frame": "\(step.frame.number)", "data-connection": step.connection.description]) { h in
                    h.element("title", text: "step \(i + 1): \(step.kind.rawValue)\(reply) on \(step.connection) \(step.direction.reportName), \(frameText), \(step.frame.time.rfc3339)\n\(step.summary)")
                    h.empty("line", ["x1": "\(x1)", "y1": "\(ay)", "x2": "\(x2 - dir * 9)", "y2": "\(ay)", "class": "arrow"])
                    h.empty("polygon", ["points": "\(x2),\(ay) \(x2 - dir * 11),\(ay - 5) \(x2 - dir * 11),\(ay + 5)", "class": "head"])
                    let mid = (x1 + x2) / 2
                    h.element("text", ["x": "\(mid)", "y": "\(ay - 7)", "class": "el", "text-anchor": "middle"], text: clip(step.summary, 52))
                    h.element("text", ["x": "\(mid)", "y": "\(ay + 16)", "class": "meta", "text-anchor": "middle"],
                              text: "+\(fixed(offset, 3)) s · \(frameText) · \(step.connection)")
                    if !found.isEmpty {
                        h.element("g", ["class": "vmarks"]) { h in
                            let tip = found.map { "\($0.rule) (\($0.severity.name)): \($0.message)" }.joined(separator: "\n")
                            h.element("circle", ["cx": "\(mid)", "cy": "\(ay)", "r": "7", "class": "vdot sx-\(worst?.name ?? "info")"]) { $0.element("title", text: tip) }
                            for (k, v) in found.enumerated() {
                                let ty = ay + 4 + k * 15
                                h.element("g", ["class": "vmark", "data-severity": v.severity.name, "data-rule": v.rule]) { h in
                                    h.element("title", text: "\(v.rule) (\(v.severity.name), \(v.actor.rawValue)): \(v.message)\n\(clip(v.evidence, 400))")
                                    h.empty("circle", ["cx": "\(SequenceDiagram.markColumn + 5)", "cy": "\(ty - 4)", "r": "5", "class": "vdot sx-\(v.severity.name)"])
                                    h.element("text", ["x": "\(SequenceDiagram.markColumn + 15)", "y": "\(ty)", "class": "vrule sx-\(v.severity.name)"], text: "\(v.rule) · \(v.severity.name)")
                                }
                            }
                        }
                    }
                }
                y += rowHeights[i]
            }
            if steps.isEmpty {
                h.element("text", ["x": "\(SequenceDiagram.laneX[1])", "y": "\(top + 10)", "class": "meta", "text-anchor": "middle"], text: "no steps recorded")
            }
        }
    }
}

/// At most `n` characters of `s`, with an ellipsis when cut (on characters, before escaping).
func clip(_ s: String, _ n: Int) -> String {
    s.count <= n ? s : String(s.prefix(n - 1)) + "…"
}

