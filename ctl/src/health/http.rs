//! The HTTP side of a negotiate check (ldirectord `check_http`,
//! specs/ipvs.md §7.3): one HTTP/1.0 request with `Connection: close`, so the
//! response ends at EOF and is never chunked; the server is up when the
//! status is 2xx and, if `receive` is set, the body (the headers for HEAD)
//! matches it.

use conf::health::HttpMethod;
use regex::Regex;

/// The request bytes for `path` on `host`.
pub fn request(method: HttpMethod, path: &str, host: &str) -> Vec<u8> {
    let m = match method {
        HttpMethod::Get => "GET",
        HttpMethod::Head => "HEAD",
    };
    format!("{m} {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: rvs-health\r\nAccept: */*\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// Judges a complete response: Ok(reason) when up, Err(reason) when down.
pub fn judge(method: HttpMethod, response: &[u8], receive: Option<&Regex>) -> Result<String, String> {
    let Some(head_end) = find(response, b"\r\n\r\n").map(|i| i + 4).or_else(|| find(response, b"\n\n").map(|i| i + 2))
    else {
        if response.is_empty() {
            return Err("no response".into());
        }
        return Err("incomplete HTTP response".into());
    };
    let head = String::from_utf8_lossy(&response[..head_end]);
    let status_line = head.lines().next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(format!("not an HTTP response: {:?}", truncate(status_line)));
    };
    if !version.starts_with("HTTP/") {
        return Err(format!("not an HTTP response: {:?}", truncate(status_line)));
    }
    let Ok(code) = code.parse::<u16>() else {
        return Err(format!("bad HTTP status line: {:?}", truncate(status_line)));
    };
    if !(200..300).contains(&code) {
        return Err(format!("HTTP {code}"));
    }
    if let Some(re) = receive {
        let text = match method {
            HttpMethod::Get => String::from_utf8_lossy(&response[head_end..]),
            HttpMethod::Head => head.clone(),
        };
        if !re.is_match(&text) {
            return Err(format!("HTTP {code}, but the response does not match receive {:?}", re.as_str()));
        }
        return Ok(format!("HTTP {code}, receive matched"));
    }
    Ok(format!("HTTP {code}"))
}

/// Whether `resp` is a whole response already: its headers ended and, for
/// GET, the `Content-Length` bytes of body arrived (a server that keeps the
/// connection open despite `Connection: close` is judged without waiting
/// for the timeout). Without a length the response ends at EOF.
pub fn complete(method: HttpMethod, resp: &[u8]) -> bool {
    let Some(end) = find(resp, b"\r\n\r\n").map(|i| i + 4) else { return false };
    if method == HttpMethod::Head {
        return true;
    }
    let head = String::from_utf8_lossy(&resp[..end]);
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .is_some_and(|len| resp.len() >= end + len)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_http_1_0_with_host() {
        assert_eq!(
            request(HttpMethod::Get, "/index.html", "www.example.com"),
            b"GET /index.html HTTP/1.0\r\nHost: www.example.com\r\nUser-Agent: rvs-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        assert!(request(HttpMethod::Head, "/", "10.0.2.11").starts_with(b"HEAD / HTTP/1.0\r\n"));
    }

    #[test]
    fn status_and_receive() {
        let ok = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nhello rs1\n";
        assert_eq!(judge(HttpMethod::Get, ok, None), Ok("HTTP 200".into()));
        let re = Regex::new("rs[0-9]").unwrap();
        assert_eq!(judge(HttpMethod::Get, ok, Some(&re)), Ok("HTTP 200, receive matched".into()));
        let re = Regex::new("broken").unwrap();
        assert_eq!(
            judge(HttpMethod::Get, ok, Some(&re)),
            Err("HTTP 200, but the response does not match receive \"broken\"".into())
        );
        // The receive regex is matched against the body, not the headers.
        let re = Regex::new("Server").unwrap();
        assert!(judge(HttpMethod::Get, ok, Some(&re)).is_err());
        assert!(judge(HttpMethod::Head, ok, Some(&re)).is_ok());
        assert_eq!(judge(HttpMethod::Get, b"HTTP/1.1 404 Not Found\r\n\r\n", None), Err("HTTP 404".into()));
        assert_eq!(judge(HttpMethod::Get, b"", None), Err("no response".into()));
        assert_eq!(judge(HttpMethod::Get, b"HTTP/1.0 200", None), Err("incomplete HTTP response".into()));
        assert!(judge(HttpMethod::Get, b"SSH-2.0-OpenSSH\r\n\r\n", None).unwrap_err().starts_with("not an HTTP"));
    }

    #[test]
    fn completeness() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        assert!(complete(HttpMethod::Get, r));
        assert!(!complete(HttpMethod::Get, &r[..r.len() - 1]));
        assert!(!complete(HttpMethod::Get, b"HTTP/1.0 200 OK\r\n\r\nbody"));
        assert!(complete(HttpMethod::Head, b"HTTP/1.0 200 OK\r\n\r\n"));
        assert!(!complete(HttpMethod::Head, b"HTTP/1.0 200 OK\r\n"));
    }
}
