//! Leaf helpers every handler shares, importing no handler: the connection and client facts
//! (`conn`), form and query values (`form`), bounded request bodies (`body`), and the proxy
//! path's error type with its one mapping to a response (`error`).

pub mod body;
pub mod conn;
pub mod error;
pub mod form;

pub use body::read_body;
pub use conn::{client_ip, origin_ok, set_cookie, user_agent, Conn};
pub use error::{respond, store_error, wants_html, GatewayError};
pub use form::{form_value, query_param};
