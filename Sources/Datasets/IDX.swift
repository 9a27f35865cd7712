extension ImageDataset {
    /// Magic number of an IDX images file: unsigned bytes (0x08), 3 dimensions.
    public static let idxImagesMagic: UInt32 = 0x0000_0803
    /// Magic number of an IDX labels file: unsigned bytes (0x08), 1 dimension.
    public static let idxLabelsMagic: UInt32 = 0x0000_0801

    /// Loads an MNIST-style pair of IDX files, each optionally gzip-compressed (detected by the `0x1f 0x8b` magic).
    ///
    /// Images file: big-endian `u32` magic `0x00000803`, `u32` count, `u32` rows, `u32` columns, then
    /// `count * rows * columns` unsigned bytes, image after image, each row-major.
    /// Labels file: big-endian `u32` magic `0x00000801`, `u32` count, then `count` unsigned bytes.
    ///
    /// The result has `maxPixelValue` 255. Checks, each a ``DatasetError`` naming the file: magic numbers;
    /// rows, columns >= 1 and no overflow; both counts equal; the data is not shorter than the header promises
    /// for the items read; every label read is in `0 ..< numClasses`; and, when every item is read (no
    /// `limit`, or `limit >= count`), that no byte follows the promised data.
    ///
    /// - Parameter limit: read only the first `min(limit, count)` items (the rest of each file is not read
    ///   or checked). `nil` reads all.
    public static func loadIDX(images: String, labels: String, numClasses: Int = 10, limit: Int? = nil) throws -> ImageDataset {
        guard numClasses >= 1 else { throw DatasetError(path: labels, .invalidArgument("numClasses must be >= 1, got \(numClasses)")) }
        if let limit = limit, limit < 0 {
            throw DatasetError(path: images, .invalidArgument("limit must be >= 0, got \(limit)"))
        }
        let imageReader = try ByteReader(path: images)
        let labelReader = try ByteReader(path: labels)

        let imageHeader = try readHeader(imageReader, words: 4, magic: idxImagesMagic)
        let labelHeader = try readHeader(labelReader, words: 2, magic: idxLabelsMagic)
        let (count, rows, columns) = (imageHeader[1], imageHeader[2], imageHeader[3])
        let perImage = rows.multipliedReportingOverflow(by: columns)
        let total = perImage.partialValue.multipliedReportingOverflow(by: count)
        guard rows >= 1, columns >= 1, !perImage.overflow, !total.overflow, total.partialValue <= Int.max - 16 else {
            throw DatasetError(path: images, .invalidDimensions(count: count, rows: rows, columns: columns))
        }
        guard labelHeader[1] == count else {
            throw DatasetError(path: images, .countMismatch(count: count, otherPath: labels, otherCount: labelHeader[1]))
        }
        let n = min(count, limit ?? count)
        let readsAll = n == count

        // Pixels, read in chunks so a lying header cannot make us allocate more than the file holds (+ one chunk).
        let pixelCount = n * perImage.partialValue
        let chunkSize = 1 << 22
        // An uncompressed file cannot hold more than its size: a header promising more is rejected before anything
        // is allocated, with the error reading would give (a 16-byte header claiming 4e9 images used to reserve
        // 64 MiB first). A gzip stream's length is unknown until read, so its buffer grows with what it delivers.
        if !imageReader.isCompressed, let size = imageReader.fileSize, pixelCount > size - 16 {
            let image = max(0, size - 16) / perImage.partialValue
            throw DatasetError(path: images, .truncated(what: "image \(image) of \(count) (\(rows)×\(columns) bytes each)",
                                                        expectedBytes: 16 + (image + 1) * perImage.partialValue,
                                                        foundBytes: 16 + max(0, size - 16)))
        }
        var pixels = [UInt8]()
        pixels.reserveCapacity(imageReader.isCompressed ? min(pixelCount, chunkSize) : pixelCount)
        while pixels.count < pixelCount {
            let want = min(chunkSize, pixelCount - pixels.count)
            let got = try imageReader.read(count: want)
            pixels.append(contentsOf: got)
            if got.count < want {
                let image = pixels.count / perImage.partialValue
                throw DatasetError(path: images, .truncated(what: "image \(image) of \(count) (\(rows)×\(columns) bytes each)",
                                                            expectedBytes: 16 + (image + 1) * perImage.partialValue,
                                                            foundBytes: 16 + pixels.count))
            }
        }
        if readsAll, try !imageReader.atEnd() {
            throw DatasetError(path: images, .trailingData(expectedBytes: 16 + pixelCount))
        }

        let rawLabels = try labelReader.read(count: n)
        if rawLabels.count < n {
            throw DatasetError(path: labels, .truncated(what: "label \(rawLabels.count) of \(count)",
                                                        expectedBytes: 8 + rawLabels.count + 1, foundBytes: 8 + rawLabels.count))
        }
        if readsAll, try !labelReader.atEnd() {
            throw DatasetError(path: labels, .trailingData(expectedBytes: 8 + n))
        }
        var labelValues = [Int32]()
        labelValues.reserveCapacity(n)
        for (i, l) in rawLabels.enumerated() {
            guard Int(l) < numClasses else {
                throw DatasetError(path: labels, .labelOutOfRange(index: i, location: "byte offset \(8 + i)", label: Int(l), numClasses: numClasses))
            }
            labelValues.append(Int32(l))
        }
        return ImageDataset(unchecked: rows, columns, pixels, labelValues, numClasses, 255)
    }

    /// Reads `words` big-endian u32 values and checks the first against `magic`.
    private static func readHeader(_ reader: ByteReader, words: Int, magic: UInt32) throws -> [Int] {
        let bytes = try reader.read(count: 4 * words)
        if bytes.count >= 4 {
            let found = bytes.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            guard found == magic else { throw DatasetError(path: reader.path, .wrongMagic(expected: magic, found: found)) }
        }
        guard bytes.count == 4 * words else {
            throw DatasetError(path: reader.path, .truncated(what: "the \(4 * words)-byte IDX header",
                                                             expectedBytes: 4 * words, foundBytes: bytes.count))
        }
        return (0..<words).map { w in
            Int(bytes[(4 * w)..<(4 * w + 4)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        }
    }
}
