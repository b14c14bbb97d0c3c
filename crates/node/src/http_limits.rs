//! What an HTTP server role of applab-node (origin, proxy) bounds in a
//! client's requests, as the flags both take: hostile or slow clients get
//! the matching status (408, 414, 431) and a closed connection.

use applab_proto::http::Limits;

#[derive(clap::Args, Clone, Debug)]
pub struct HeadArgs {
    /// Close a connection idle this many seconds.
    #[arg(long, default_value_t = 15)]
    pub idle_timeout: u64,
    /// Seconds a client has to send a whole request head (slow clients get 408).
    #[arg(long, default_value_t = 10)]
    pub header_timeout: u64,
    /// Longest request line, in bytes (longer: 414).
    #[arg(long, default_value_t = 8192)]
    pub max_request_line: usize,
    /// Largest request head, in bytes (larger: 431).
    #[arg(long, default_value_t = 32768)]
    pub max_head: usize,
    /// Most header fields in a request (more: 431).
    #[arg(long, default_value_t = 100)]
    pub max_headers: usize,
}

impl HeadArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_request_line: self.max_request_line,
            max_head: self.max_head,
            max_headers: self.max_headers,
        }
    }
}
