//! A real browser for the console's tests: Debian's chromium, headless,
//! driven over WebDriver by chromedriver (started here on a free port)
//! through fantoccini. `deploy/local/test.sh` installs both and sets
//! `INTOPS_CHROMIUM` and `INTOPS_CHROMEDRIVER`.

use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::poll_until;

const WAIT: Duration = Duration::from_secs(60);

/// A browser session and the chromedriver serving it (killed on drop).
#[derive(Debug)]
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    _driver: tokio::process::Child,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> anyhow::Result<Self> {
        let driver_bin =
            std::env::var("INTOPS_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium =
            std::env::var("INTOPS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = crate::stack::free_port();
        let driver = tokio::process::Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!("cannot start {driver_bin} (apt-get install chromium-driver): {e}")
            })?;
        let url = format!("http://127.0.0.1:{port}");
        poll_until("chromedriver answering", WAIT, || async {
            reqwest::get(format!("{url}/status"))
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        })
        .await;
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--no-first-run", "--disable-background-networking"],
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            anyhow::bail!("capabilities are an object");
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await?;
        Ok(Self {
            client,
            _driver: driver,
        })
    }

    /// Opens `url`.
    pub async fn open(&self, url: &str) -> anyhow::Result<()> {
        Ok(self.client.goto(url).await?)
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        Ok(self.client.find(Locator::Css(css)).await?.text().await?)
    }

    /// Whether an element matches `css`.
    pub async fn has(&self, css: &str) -> anyhow::Result<bool> {
        Ok(!self.client.find_all(Locator::Css(css)).await?.is_empty())
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> anyhow::Result<usize> {
        Ok(self.client.find_all(Locator::Css(css)).await?.len())
    }

    /// Clicks the first element matching `css` and lets the page load.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        Ok(self.client.find(Locator::Css(css)).await?.click().await?)
    }

    /// Waits until the page (after a click or a submit that navigates)
    /// has an element matching `css` whose text contains `wanted`; its text.
    pub async fn wait(&self, css: &str, wanted: &str) -> String {
        poll_until(&format!("{css} showing {wanted:?}"), WAIT, || async {
            // find_all answers at once; find may wait for the element.
            let found = self.client.find_all(Locator::Css(css)).await.ok()?;
            let text = found.first()?.text().await.ok()?;
            text.contains(wanted).then_some(text)
        })
        .await
    }

    /// Fills `fields` of the form matching `css` and submits it.
    pub async fn submit(&self, css: &str, fields: &[(&str, &str)]) -> anyhow::Result<()> {
        let mut form = self.client.form(Locator::Css(css)).await?;
        for (name, value) in fields {
            form = form.set_by_name(name, value).await?;
        }
        Ok(form.submit().await?)
    }

    /// Saves a PNG of the page as `<dir>/<name>.png` when
    /// `INTOPS_SCREENSHOTS_DIR` names a directory (deploy/local/screenshots.sh).
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<()> {
        if let Ok(dir) = std::env::var("INTOPS_SCREENSHOTS_DIR") {
            let png = self.client.screenshot().await?;
            std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png)?;
        }
        Ok(())
    }

    /// Ends the session.
    pub async fn close(self) -> anyhow::Result<()> {
        Ok(self.client.close().await?)
    }
}
