//! A minimal SMTP server for tests on `127.0.0.1:0`: it accepts every message and queues it for
//! `next_message`. Plain text only (no STARTTLS, no AUTH); just enough of RFC 5321 for lettre.
// Not every test binary uses every helper here.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex};
use tokio::task::{JoinHandle, JoinSet};

/// Longest command line accepted (RFC 5321 §4.5.3.1.4 allows 512; be generous).
const MAX_LINE_BYTES: usize = 4096;
/// Largest message accepted.
const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;

/// One message as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The `MAIL FROM` address, without angle brackets.
    pub from: String,
    /// The `RCPT TO` addresses, in order, without angle brackets.
    pub to: Vec<String>,
    /// The message (headers and body) after dot-unstuffing, CRLF line ends kept, without the
    /// terminating `.` line.
    pub data: String,
}

impl ReceivedMail {
    /// The body: everything after the first empty line.
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map_or("", |(_headers, body)| body)
    }

    /// The first run of exactly `digits` ASCII digits in the body (e.g. an email code).
    pub fn code(&self, digits: usize) -> Option<String> {
        self.body()
            .split(|c: char| !c.is_ascii_digit())
            .find(|run| run.len() == digits)
            .map(str::to_owned)
    }
}

/// A running test SMTP server; stops when dropped.
pub struct TestSmtp {
    /// Where it listens.
    pub addr: SocketAddr,
    inbox: Mutex<mpsc::UnboundedReceiver<ReceivedMail>>,
    accept_task: JoinHandle<()>,
}

impl TestSmtp {
    /// Binds `127.0.0.1:0` and starts accepting connections.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let accept_task = tokio::spawn(async move {
            // Connection tasks live in this set, so aborting the accept task ends them too.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _peer)) => {
                            let tx = tx.clone();
                            connections.spawn(async move {
                                let (read, write) = stream.into_split();
                                let _ = serve(read, write, tx).await;
                            });
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Self {
            addr,
            inbox: Mutex::new(rx),
            accept_task,
        })
    }

    /// An `smtp://` URL for `mfa.email.smtp_url` / `EmailSender::new`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The next received message, or `None` if none arrives within `timeout`.
    pub async fn next_message(&self, timeout: Duration) -> Option<ReceivedMail> {
        let mut inbox = self.inbox.lock().await;
        tokio::time::timeout(timeout, inbox.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

/// Envelope of the transaction in progress.
#[derive(Default)]
struct Envelope {
    from: Option<String>,
    to: Vec<String>,
}

async fn serve<R, W>(
    read: R,
    mut write: W,
    inbox: mpsc::UnboundedSender<ReceivedMail>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(read);
    let mut envelope = Envelope::default();
    reply(&mut write, "220 portcullis-test ESMTP ready\r\n").await?;
    loop {
        let Some(line) = read_line(&mut reader, MAX_LINE_BYTES).await? else {
            return Ok(());
        };
        let Ok(line) = String::from_utf8(line) else {
            reply(&mut write, "500 5.5.2 invalid command encoding\r\n").await?;
            continue;
        };
        let line = line.trim_end_matches(['\r', '\n']);
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                envelope = Envelope::default();
                reply(&mut write, "250-portcullis-test\r\n250 8BITMIME\r\n").await?;
            }
            "HELO" => {
                envelope = Envelope::default();
                reply(&mut write, "250 portcullis-test\r\n").await?;
            }
            "MAIL" => match path_after(arg, "FROM:") {
                _ if envelope.from.is_some() => {
                    reply(&mut write, "503 5.5.1 nested MAIL command\r\n").await?;
                }
                Some(from) => {
                    envelope.from = Some(from);
                    reply(&mut write, "250 2.1.0 OK\r\n").await?;
                }
                None => reply(&mut write, "501 5.5.4 syntax: MAIL FROM:<address>\r\n").await?,
            },
            "RCPT" => match path_after(arg, "TO:") {
                _ if envelope.from.is_none() => {
                    reply(&mut write, "503 5.5.1 need MAIL first\r\n").await?;
                }
                Some(to) if !to.is_empty() => {
                    envelope.to.push(to);
                    reply(&mut write, "250 2.1.5 OK\r\n").await?;
                }
                _ => reply(&mut write, "501 5.5.4 syntax: RCPT TO:<address>\r\n").await?,
            },
            "DATA" => {
                let Some(from) = envelope.from.clone().filter(|_| !envelope.to.is_empty()) else {
                    reply(&mut write, "503 5.5.1 need MAIL and RCPT first\r\n").await?;
                    continue;
                };
                reply(&mut write, "354 end data with <CR><LF>.<CR><LF>\r\n").await?;
                let Some(data) = read_data(&mut reader).await? else {
                    return Ok(());
                };
                let to = std::mem::take(&mut envelope.to);
                envelope = Envelope::default();
                match data {
                    Some(data) => {
                        let _ = inbox.send(ReceivedMail { from, to, data });
                        reply(&mut write, "250 2.0.0 queued\r\n").await?;
                    }
                    None => reply(&mut write, "552 5.3.4 message too big\r\n").await?,
                }
            }
            "RSET" => {
                envelope = Envelope::default();
                reply(&mut write, "250 2.0.0 OK\r\n").await?;
            }
            "NOOP" => reply(&mut write, "250 2.0.0 OK\r\n").await?,
            "QUIT" => {
                reply(&mut write, "221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => reply(&mut write, "502 5.5.2 command not recognized\r\n").await?,
        }
    }
}

async fn reply<W: AsyncWrite + Unpin>(write: &mut W, text: &str) -> std::io::Result<()> {
    write.write_all(text.as_bytes()).await?;
    write.flush().await
}

/// Reads one line including its `\n`; `None` at end of stream. Longer lines are cut at `max`
/// bytes (the rest is read as the next line), which is enough for a test server.
async fn read_line<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok((!line.is_empty()).then_some(line));
        }
        let room = max.saturating_sub(line.len());
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) if i < room => (i + 1, true),
            _ => (buf.len().min(room), buf.len() >= room),
        };
        line.extend(buf.iter().take(take));
        reader.consume(take);
        if done {
            return Ok(Some(line));
        }
    }
}

/// Reads a DATA section up to the `.` line. `Ok(None)` if the stream ended first;
/// `Ok(Some(None))` if the message was too big (it is still read to its end).
async fn read_data<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
) -> std::io::Result<Option<Option<String>>> {
    let mut data = Vec::new();
    let mut too_big = false;
    loop {
        let Some(line) = read_line(reader, MAX_LINE_BYTES).await? else {
            return Ok(None);
        };
        if line == b".\r\n" || line == b".\n" {
            break;
        }
        // Dot-unstuffing (RFC 5321 §4.5.2): a leading dot was doubled by the client.
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + line.len() > MAX_MESSAGE_BYTES {
            too_big = true;
        } else {
            data.extend_from_slice(line);
        }
    }
    Ok(Some(
        (!too_big).then(|| String::from_utf8_lossy(&data).into_owned()),
    ))
}

/// The address in `FROM:<addr> PARAMS` / `TO:<addr>` (prefix case-insensitive), without brackets.
fn path_after(arg: &str, prefix: &str) -> Option<String> {
    let head = arg.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg.get(prefix.len()..)?.trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    inner.get(..end).map(str::to_owned)
}
