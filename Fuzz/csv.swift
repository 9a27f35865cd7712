// libFuzzer target: ImageDataset.loadCSV(path:side:labelColumn:maxValue:numClasses:hasHeader:limit:).
// Input: [options][maxValue][classes/limit][CSV bytes (may be gzip)]
//   options bits 0-2: side - 1 (1 ... 8); bit 3: label last; bit 4: hasHeader.
//   byte 2: bits 0-3 numClasses - 1; bits 4-7: 0 = no limit, else limit = value - 1.
import Datasets
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let options = input.byte(), maxValue = Int(input.byte()), classes = input.byte()
    let side = Int(options & 0x07) + 1
    let labelColumn: ImageDataset.LabelColumn = options & 0x08 != 0 ? .last : .first
    let hasHeader = options & 0x10 != 0
    let numClasses = Int(classes & 0x0f) + 1
    let limit: Int? = classes >> 4 == 0 ? nil : Int(classes >> 4) - 1
    let path = FuzzScratch.write(input.rest(), "data.csv")
    do {
        let d = try ImageDataset.loadCSV(path: path, side: side, labelColumn: labelColumn, maxValue: maxValue,
                                         numClasses: numClasses, hasHeader: hasHeader, limit: limit)
        let checked = try! ImageDataset(height: d.height, width: d.width, pixels: d.pixels, labels: d.labels,
                                        numClasses: d.numClasses, maxPixelValue: d.maxPixelValue)
        precondition(checked == d && d.height == side && d.width == side)
        if let limit { precondition(d.count <= limit) }
        if d.count > 0 { _ = d.normalizedPixels(); _ = d.classCounts() }
        fuzzNote("loaded \(d.count) images of \(d.height)×\(d.width)")
    } catch let e as DatasetError {
        precondition(e.description.hasPrefix(e.path + ": "), "error without its path: \(e)")
        fuzzNote("error: \(e)")
    } catch {
        fatalError("loadCSV threw a non-DatasetError: \(error)")
    }
    return 0
}
