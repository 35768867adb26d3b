// swift-tools-version:5.9
// robust-eval: a Swift toolkit that reads a classifier as a Joint Energy-based Model (JEM)
// and measures its adversarial robustness. C kernels (OpenMP + OpenBLAS) live in CJEMKernels;
// only JEMCore imports them.
import PackageDescription

// libomp-dev (LLVM 14) installs omp.h and libomp.so outside the Swift toolchain's search paths.
// `-idirafter` keeps the toolchain's own clang builtin headers ahead of LLVM 14's.
let ompInclude = "/usr/lib/llvm-14/lib/clang/14.0.6/include"
let ompLib = "/usr/lib/llvm-14/lib"

let package = Package(
    name: "robust-eval",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "robust-eval", targets: ["robust-eval"]),
        .library(name: "JEMCore", targets: ["JEMCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        .target(
            name: "CJEMKernels",
            cSettings: [
                // Optimised in every configuration: debug builds of the kernels are otherwise unusable.
                .unsafeFlags(["-O3", "-march=x86-64-v3", "-ffp-contract=fast", "-fopenmp",
                              "-idirafter", ompInclude, "-Wno-unused-command-line-argument"]),
            ],
            linkerSettings: [
                .unsafeFlags(["-L\(ompLib)"]),
                .linkedLibrary("omp"),
                .linkedLibrary("openblas"),
                .linkedLibrary("m"),
            ]
        ),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // ONNX's schema, generated once by scripts/gen_onnx_proto.sh (committed; not rebuilt by CI).
        .target(name: "ONNXProto", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "JEMCore", dependencies: ["CJEMKernels", "CZlib", "ONNXProto",
                                           .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "Attacks", dependencies: ["JEMCore"]),
        .target(name: "JEMRobust", dependencies: ["JEMCore", "Attacks"]),
        .executableTarget(
            name: "robust-eval",
            dependencies: [
                "JEMCore", "Attacks", "JEMRobust",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            resources: [.copy("Models")]
        ),
        // Fuzz targets for the file readers (scripts/fuzz.sh); a normal build replays saved inputs.
        .executableTarget(name: "fuzz-readers", dependencies: ["JEMCore"]),
        .testTarget(name: "JEMCoreTests", dependencies: ["JEMCore", "CJEMKernels", "CZlib"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "AttacksTests", dependencies: ["Attacks", "JEMCore"]),
        .testTarget(name: "JEMRobustTests", dependencies: ["JEMRobust", "Attacks", "JEMCore", "CZlib"]),
        .testTarget(name: "CLITests", dependencies: ["robust-eval", "JEMCore", "Attacks"]),
    ]
)
