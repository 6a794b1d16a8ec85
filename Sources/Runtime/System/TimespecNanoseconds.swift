import Glibc

extension timespec {
    /// The time as one count of nanoseconds (file times compared or written as one number).
    var nanoseconds: Int64 { Int64(tv_sec) * 1_000_000_000 + Int64(tv_nsec) }
}
