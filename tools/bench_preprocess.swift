// Throughput of the Images module's preprocessing on one core (report only).
// Built by tools/bench_preprocess.sh with swiftc -O from the module's sources; not part of the package.
import Foundation

func synthetic(_ w: Int, _ h: Int) -> RGBImage {
    var rng = SeededRandom(seed: UInt64(w * 1000 + h))
    var px = [UInt8](repeating: 0, count: w * h * 3)
    for y in 0..<h {
        for x in 0..<w {
            for c in 0..<3 {
                px[(y * w + x) * 3 + c] = UInt8(truncatingIfNeeded: (x * (c + 1) + y * (3 - c)) / 3 + Int(rng.next() % 32))
            }
        }
    }
    return RGBImage(width: w, height: h, pixels: px)
}

/// Median and best of 7 batches of ~0.3 s (the machine is shared: the best batch is the least disturbed).
func rate(_ label: String, _ body: () -> Void) {
    for _ in 0..<5 { body() }
    var perImage = [Double]()
    for _ in 0..<7 {
        var n = 0
        let t0 = Date()
        while Date().timeIntervalSince(t0) < 0.3 { body(); n += 1 }
        perImage.append(Date().timeIntervalSince(t0) / Double(n))
    }
    perImage.sort()
    let padded = label.padding(toLength: 44, withPad: " ", startingAt: 0)
    print(padded + String(format: " median %6.0f images/s, best %6.0f  (best %.3f ms/image)",
                          1 / perImage[3], 1 / perImage[0], 1000 * perImage[0]))
}

@main struct Bench {
    static func main() throws {
        let dino = try Recipe.dinov2(), clip = try Recipe.clip()
        let aug = try RandomResizedCrop(size: 224)
        var out = [Float](repeating: 0, count: dino.floatsPerImage)
        for (w, h) in [(300, 300), (500, 375)] {
            let img = synthetic(w, h)
            out.withUnsafeMutableBufferPointer { o in
                rate("dinov2(256, 224) eval, \(w)×\(h)") { dino.apply(img, into: o.baseAddress!) }
                rate("clip(224) eval, \(w)×\(h)") { clip.apply(img, into: o.baseAddress!) }
                var i = 0
                rate("RandomResizedCrop(224)+flip, \(w)×\(h)") {
                    aug.apply(img, seed: 1, epoch: 0, index: i, into: o.baseAddress!); i += 1
                }
            }
            let s = Recipe.resizedSize(width: w, height: h, shortestEdge: 256)
            rate("full resize to \(s.width)×\(s.height) bicubic, \(w)×\(h)") {
                _ = img.resized(width: s.width, height: s.height, filter: .bicubic)
            }
        }
    }
}
