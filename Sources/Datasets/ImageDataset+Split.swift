import Tensors

extension ImageDataset {
    /// The images at `indices`, in that order: image `k` of the result is image `indices[k]` of `self`, with its
    /// label. Repeated indices are allowed (the image is copied again); an empty list gives an empty dataset.
    /// `height`, `width`, `numClasses` and `maxPixelValue` are kept.
    ///
    /// - Throws: ``DatasetError`` (path `"ImageDataset.subset"`, ``DatasetError/Kind/invalidArgument(_:)``)
    ///   naming the first index outside `0 ..< count` and its position in `indices`.
    public func subset(_ indices: [Int]) throws -> ImageDataset {
        if let k = indices.firstIndex(where: { $0 < 0 || $0 >= count }) {
            throw DatasetError(path: "ImageDataset.subset", .invalidArgument(
                "indices[\(k)] is \(indices[k]); expected every index in 0 ..< \(count) (the dataset's count)"))
        }
        let n = pixelsPerImage
        var newPixels = [UInt8]()
        newPixels.reserveCapacity(indices.count * n)
        for i in indices { newPixels.append(contentsOf: pixels[(i * n)..<((i + 1) * n)]) }
        return ImageDataset(unchecked: height, width, newPixels, indices.map { labels[$0] }, numClasses, maxPixelValue)
    }

    /// The indices of a seeded stratified train/test split; see ``stratifiedSplit(testPerClass:seed:)``.
    ///
    /// Exact definition: for each class `c` in `0 ..< numClasses`, let `I_c` be the indices of the images labelled
    /// `c`, in ascending order, and `p = SeededRandom(seed: seed, stream: "stratified-split-\(c)").permutation(I_c.count)`.
    /// The test indices of class `c` are `I_c[p[0]], …, I_c[p[testPerClass − 1]]`, the rest of `I_c` is train.
    /// Both returned lists are sorted ascending (the dataset's own order), so they hold exactly `testPerClass`
    /// (test) and `I_c.count − testPerClass` (train) indices of every class, are disjoint, and together are
    /// `0 ..< count`. One stream per class means class `c`'s split does not depend on the other classes.
    ///
    /// - Throws: ``DatasetError`` (path `"ImageDataset.stratifiedSplit"`) if `testPerClass < 1`, or some class
    ///   has `testPerClass` images or fewer (naming the class and its count): every class must keep at least one
    ///   training image, or the split would not represent every class on both sides.
    public func stratifiedSplitIndices(testPerClass: Int, seed: UInt64) throws -> (train: [Int], test: [Int]) {
        func fail(_ text: String) -> DatasetError { DatasetError(path: "ImageDataset.stratifiedSplit", .invalidArgument(text)) }
        guard testPerClass >= 1 else { throw fail("testPerClass must be >= 1, got \(testPerClass)") }
        var byClass = [[Int]](repeating: [], count: numClasses)
        for (i, l) in labels.enumerated() { byClass[Int(l)].append(i) }
        if let c = byClass.firstIndex(where: { $0.count <= testPerClass }) {
            throw fail("class \(c) has \(byClass[c].count) images; testPerClass \(testPerClass) needs at least"
                       + " \(testPerClass + 1) per class (every class keeps one or more training images)")
        }
        var isTest = [Bool](repeating: false, count: count)
        for (c, members) in byClass.enumerated() {
            var rng = SeededRandom(seed: seed, stream: "stratified-split-\(c)")
            for k in rng.permutation(members.count).prefix(testPerClass) { isTest[members[k]] = true }
        }
        let all = 0..<count
        return (all.filter { !isTest[$0] }, all.filter { isTest[$0] })
    }

    /// A seeded stratified train/test split: `test` holds exactly `testPerClass` images of every class, `train`
    /// all the others, each in the dataset's own order. Deterministic for a `seed` (the same on every machine
    /// and rank); which images are chosen is defined in ``stratifiedSplitIndices(testPerClass:seed:)``.
    ///
    /// Stratified rather than "the last N images" because files such as MNIST-5k are sorted by label.
    public func stratifiedSplit(testPerClass: Int, seed: UInt64) throws -> (train: ImageDataset, test: ImageDataset) {
        let (train, test) = try stratifiedSplitIndices(testPerClass: testPerClass, seed: seed)
        return (try subset(train), try subset(test))
    }
}
