//! An HTTP sink on loopback for alert tests: records every request it receives and answers each
//! path with the statuses it was told to (503 twice, then 200, say).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body of {} is not JSON ({e}): {}", self.path, self.body))
    }
}

pub struct Sink {
    pub base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
    scripts: Arc<Mutex<HashMap<String, Vec<u16>>>>,
    held: Arc<(Mutex<std::collections::HashSet<String>>, std::sync::Condvar)>,
    server: Arc<tiny_http::Server>,
}

impl Sink {
    pub fn start() -> Sink {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("binding the sink"));
        let base_url = format!("http://{}", server.server_addr().to_ip().expect("an IP address"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let scripts: Arc<Mutex<HashMap<String, Vec<u16>>>> = Arc::new(Mutex::new(HashMap::new()));
        let held: Arc<(Mutex<std::collections::HashSet<String>>, std::sync::Condvar)> = Arc::default();
        let (srv, rec, scr, hold) = (server.clone(), received.clone(), scripts.clone(), held.clone());
        std::thread::spawn(move || {
            for mut req in srv.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let path = req.url().to_string();
                let url = path.clone();
                let status = scr.lock().unwrap().get_mut(&path).filter(|s| !s.is_empty()).map_or(200, |s| s.remove(0));
                rec.lock().unwrap().push(Received {
                    method: req.method().to_string(),
                    path,
                    headers: req.headers().iter().map(|h| (h.field.to_string(), h.value.to_string())).collect(),
                    body,
                });
                // A held path answers only once released.
                let (paths, released) = &*hold;
                let mut p = paths.lock().unwrap();
                while p.contains(&url) {
                    p = released.wait(p).unwrap();
                }
                drop(p);
                let _ = req.respond(tiny_http::Response::from_string("ok").with_status_code(status));
            }
        });
        Sink { base_url, received, scripts, held, server }
    }

    /// The next answers for `path`, in order; 200 after them.
    pub fn answer(&self, path: &str, statuses: &[u16]) {
        self.scripts.lock().unwrap().insert(path.to_string(), statuses.to_vec());
    }

    /// Requests to `path` are received (and listed) but not answered until [`Sink::release`].
    pub fn hold(&self, path: &str) {
        self.held.0.lock().unwrap().insert(path.to_string());
    }

    pub fn release(&self, path: &str) {
        self.held.0.lock().unwrap().remove(path);
        self.held.1.notify_all();
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn to(&self, path: &str) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.path == path).collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.held.0.lock().unwrap().clear();
        self.held.1.notify_all();
        self.server.unblock();
    }
}
