import JEMRobust
import XCTest
final class DefenseTests: XCTestCase {}
