//! The proxy path: path normalisation (`path`), header hygiene (`headers`), what a request
//! sends upstream (`plan`, one `ForwardPlan` written by both lanes), forwarding with streamed
//! bodies and upgrades (`forward`, hyper), the fast lane's raw HTTP/1.1 pieces (`request_head`,
//! `h1` upstream side, `relay` client side, `deadline` their per-connection timers), pools
//! (`idle`), TLS to an https upstream (`tls`), and why forwarding failed (`error`). Nothing
//! here decides who may pass; `server::phases` does.

pub mod deadline;
pub mod error;
pub mod forward;
pub mod h1;
pub mod headers;
pub mod idle;
pub mod path;
pub mod plan;
pub mod relay;
pub mod request_head;
pub mod tls;
