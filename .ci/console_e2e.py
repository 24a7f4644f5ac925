"""The web console end to end in headless Chromium (run by .ci/console).

Signs in as an admin and as an owner against a running server, exercises the
main actions, checks the security properties a browser sees, and saves
screenshots of the main pages at 1280 and 375 pixels wide.
"""

import argparse
import http.client
import os
import re
import sys
import urllib.parse

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def fail(message):
    print(f"console e2e: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


class Http:
    """Plain HTTP requests for what a browser does not show: statuses, headers."""

    def __init__(self, url):
        parsed = urllib.parse.urlparse(url)
        self.host, self.port = parsed.hostname, parsed.port

    def request(self, method, path, body=None, cookie=None):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        headers = {}
        if cookie:
            headers["Cookie"] = cookie
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urllib.parse.urlencode(body)
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode()
        connection.close()
        return response, text


def browser(profile):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def replaced(element):
    """Whether the page holding `element` was replaced (Chromium reports a
    node of a gone document with one error or another)."""
    try:
        element.is_enabled()
        return False
    except WebDriverException:
        return True


class Console:
    def __init__(self, driver, url, shots):
        self.driver, self.url, self.shots = driver, url, shots

    def open(self, path):
        self.driver.get(self.url + path)

    def text(self):
        return self.driver.find_element(By.TAG_NAME, "body").text

    def fill(self, field_id, value):
        field = self.driver.find_element(By.ID, field_id)
        field.clear()
        field.send_keys(value)

    def submit(self, form_action, confirm=False):
        """Submits the POST form whose action is `form_action` (accepting its
        confirmation first when it asks one) and waits for the next page."""
        page = self.driver.find_element(By.TAG_NAME, "html")
        self.driver.find_element(
            By.CSS_SELECTOR, f"form[method=post][action='{form_action}'] button[type=submit]"
        ).click()
        if confirm:
            WebDriverWait(self.driver, 10).until(expected_conditions.alert_is_present())
            self.driver.switch_to.alert.accept()
        WebDriverWait(self.driver, 10).until(lambda driver: replaced(page))

    def sign_in(self, email, password):
        self.open("/console/sign-in")
        self.fill("username", email)
        self.fill("password", password)
        self.submit("/console/sign-in")

    def sign_out(self):
        self.submit("/console/sign-out")

    def shoot(self, name):
        """Full-page PNGs at 1280 and 375 wide (the viewport's width)."""
        for width in (1280, 375):
            self.driver.set_window_size(width, 900)
            height = self.driver.execute_script(
                "return Math.max(document.body.scrollHeight, 600)"
            )
            self.driver.set_window_size(width, min(height, 4000))
            self.driver.save_screenshot(os.path.join(self.shots, f"{name}-{width}.png"))
        self.driver.set_window_size(1280, 900)


def http_checks(http, password, theirs):
    response, page = http.request("GET", "/console/sign-in")
    check(response.status == 200, "the sign-in page answers 200")
    check(response.getheader("Content-Security-Policy") == CSP, "the CSP header")
    check("unsafe-inline" not in response.getheader("Content-Security-Policy"), "no unsafe-inline")
    check(response.getheader("X-Frame-Options") == "DENY", "X-Frame-Options")
    check(response.getheader("Referrer-Policy") == "no-referrer", "Referrer-Policy")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form_cookie = response.getheader("Set-Cookie").split(";")[0]
    response, _ = http.request("POST", "/console/sign-in",
                               {"username": "admin@example.com", "password": password})
    check(response.status == 403, "a sign-in without its CSRF token is refused")
    response, _ = http.request(
        "POST", "/console/sign-in",
        {"csrf_token": token, "username": "admin@example.com", "password": password},
        cookie=form_cookie,
    )
    check(response.status == 303, "sign-in over HTTP")
    line = [v for k, v in response.getheaders()
            if k.lower() == "set-cookie" and v.startswith("assetpool_console=")][0]
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/console"):
        check(flag in line, f"the session cookie is {flag}")
    check("Secure" not in line, "no Secure over plain HTTP")
    session = line.split(";")[0]
    response, _ = http.request("POST", "/console/keys",
                               {"name": "csrf", "environment": "production"}, cookie=session)
    check(response.status == 403, "a POST without the CSRF token is refused with 403")
    response, _ = http.request("POST", "/console/keys",
                               {"csrf_token": "0" * 64, "name": "csrf",
                                "environment": "production"}, cookie=session)
    check(response.status == 403, "a POST with a wrong CSRF token is refused with 403")
    response, _ = http.request("GET", f"/console/keys/{theirs}", cookie=session)
    check(response.status == 200, "an admin sees any key")


def admin_flow(console, shots_wanted):
    console.sign_in("admin@example.com", console.password)
    check("Overview" in console.text(), "the admin lands on the overview")
    cookie = console.driver.get_cookie("assetpool_console")
    check(cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict",
          "the browser holds an HttpOnly, SameSite=Strict cookie")
    check(not cookie["secure"], "not Secure over plain HTTP")
    if shots_wanted:
        console.shoot("overview")
    console.open("/console/keys")
    if shots_wanted:
        console.shoot("keys")
    console.fill("new-name", "e2e-key")
    console.submit("/console/keys")
    secret = console.driver.find_element(By.ID, "secret").get_attribute("value")
    check(re.fullmatch(r"apk_prod_[0-9A-Za-z]{38}", secret), "the new secret is shown")
    console.driver.find_element(By.CSS_SELECTOR, "button[data-copy]").click()
    if shots_wanted:
        console.shoot("key-created")
    key_url = console.driver.find_element(By.LINK_TEXT, "Go to the key").get_attribute("href")
    console.driver.get(key_url)
    check(secret not in console.driver.page_source, "the secret is never shown again")
    if shots_wanted:
        console.shoot("key")
    key_path = urllib.parse.urlparse(key_url).path
    console.fill("grace", "1h")
    console.submit(f"{key_path}/rotate")
    successor_secret = console.driver.find_element(By.ID, "secret").get_attribute("value")
    check(successor_secret != secret, "rotation issues a new secret")
    console.open(key_path)
    check("rotating" in console.text(), "the old key is rotating")
    console.submit(f"{key_path}/disable")
    check("disabled" in console.text(), "the key is disabled")
    console.submit(f"{key_path}/enable")
    console.fill("reason", "e2e")
    console.submit(f"{key_path}/revoke", confirm=True)
    check("revoked" in console.text(), "the key is revoked")
    console.open("/console/alerts")
    check("revoked_key_used" in console.text(), "the revoked key's alert is listed")
    if shots_wanted:
        console.shoot("alerts")
    ack = console.driver.find_element(By.CSS_SELECTOR, "form[action$='/ack']")
    console.submit(ack.get_attribute("action").replace(console.url, ""))
    check(" by admin:admin@example.com" in console.text(), "the alert is acknowledged")
    for page, name in (("/console/audit", "audit"), ("/console/users", "users"),
                       ("/console/applications", "applications"),
                       ("/console/signing-keys", "signing-keys")):
        console.open(page)
        if shots_wanted:
            console.shoot(name)
    console.open("/console/audit")
    check("admin:admin@example.com" in console.text(), "actions are audited as the admin")
    console.sign_out()


def application_flow(console):
    """The admin creates an application and makes a user its owner (then a
    member, then an owner again); that user then sees it."""
    console.sign_in("admin@example.com", console.password)
    console.open("/console/applications")
    console.fill("application-name", "e2e-application")
    console.submit("/console/applications")
    check("Application e2e-application" in console.text(), "the new application's page")
    path = urllib.parse.urlparse(console.driver.current_url).path
    console.fill("member-email", "new-owner@example.com")
    Select(console.driver.find_element(By.ID, "member-role")).select_by_value("owner")
    console.submit(f"{path}/members")
    check("new-owner@example.com" in console.text(), "the member is listed")
    role = console.driver.find_element(
        By.CSS_SELECTOR, "select[aria-label='Role of new-owner@example.com']")
    check(role.get_attribute("value") == "owner", "as an owner")
    for wanted in ("member", "owner"):
        role = console.driver.find_element(
            By.CSS_SELECTOR, "select[aria-label='Role of new-owner@example.com']")
        Select(role).select_by_value(wanted)
        page = console.driver.find_element(By.TAG_NAME, "html")
        console.driver.find_element(
            By.CSS_SELECTOR, "button[aria-label='Change the role of new-owner@example.com']").click()
        WebDriverWait(console.driver, 10).until(lambda driver: replaced(page))
        role = console.driver.find_element(
            By.CSS_SELECTOR, "select[aria-label='Role of new-owner@example.com']")
        check(role.get_attribute("value") == wanted, f"the role is changed to {wanted}")
    console.shoot("application")
    console.open("/console/audit")
    check("application.add_member" in console.text(), "member changes are audited")
    console.sign_out()
    console.sign_in("new-owner@example.com", console.password)
    check("e2e-application" in console.text(), "the new owner sees the application")
    console.driver.find_element(By.LINK_TEXT, "e2e-application").click()
    check("No alerts about this application's keys" in console.text(), "its (empty) alerts")
    check("No key of this application has an owner webhook" in console.text(), "its webhooks")
    console.sign_out()


def key_edit_flow(console, theirs):
    """Finds a key with the list's search and state filter, then edits its
    limits, scopes and metadata (one form by keyboard alone), at 375 pixels
    wide too."""
    console.sign_in("admin@example.com", console.password)
    console.open("/console/keys")
    console.fill("q", "other-")
    Select(console.driver.find_element(By.ID, "status")).select_by_value("active")
    page = console.driver.find_element(By.TAG_NAME, "html")
    console.driver.find_element(By.CSS_SELECTOR, "form[role=search] button[type=submit]").click()
    WebDriverWait(console.driver, 10).until(lambda driver: replaced(page))
    check("status=active" in console.driver.current_url, "the filters are in the query")
    rows = console.driver.find_elements(By.CSS_SELECTOR, "tbody tr")
    check(len(rows) == 1 and "other-key" in rows[0].text, "the search finds the key by name")
    rows[0].find_element(By.LINK_TEXT, "other-key").click()
    key_path = f"/console/keys/{theirs}"
    WebDriverWait(console.driver, 10).until(lambda driver: driver.current_url.endswith(key_path))
    console.fill("rate_limit", "50/s")
    console.fill("quota", "1000/day")
    console.submit(f"{key_path}/update")
    check("rate 50/s" in console.text() and "quota 1000/day" in console.text(),
          "the limits are saved")
    console.fill("metadata", "[1]")
    page = console.driver.find_element(By.TAG_NAME, "html")
    console.driver.find_element(
        By.CSS_SELECTOR, "#edit-metadata button[type=submit]").click()
    WebDriverWait(console.driver, 10).until(lambda driver: replaced(page))
    check("JSON object" in console.text(), "bad metadata is refused with its reason")
    console.open(key_path)
    # Keyboard only: type into the scopes field and press Enter.
    scopes = console.driver.find_element(By.ID, "scopes")
    scopes.clear()
    page = console.driver.find_element(By.TAG_NAME, "html")
    scopes.send_keys("orders:read" + Keys.ENTER)
    WebDriverWait(console.driver, 10).until(lambda driver: replaced(page))
    check("orders:read" in console.driver.find_element(By.ID, "scopes").get_attribute("value"),
          "the scopes are saved from the keyboard")
    for label in ("rate_limit", "quota", "scopes", "allowed_cidrs", "metadata"):
        check(console.driver.find_elements(By.CSS_SELECTOR, f"label[for={label}]"),
              f"the {label} field is labelled")
    console.driver.set_window_size(375, 900)
    width = console.driver.execute_script("return document.documentElement.scrollWidth")
    console.driver.set_window_size(1280, 900)
    check(width <= 375, f"the key page fits 375 pixels ({width})")
    console.sign_out()


def owner_flow(console, http, mine, theirs, application):
    console.sign_in("owner@example.com", console.password)
    check("My applications" in console.text(), "the owner sees their applications")
    console.shoot("owner")
    console.open(f"/console/applications/{application}")
    text = console.text()
    check("revoked_key_used" in text, "the owner sees their application's alert")
    check("https://hooks.example.com/assetpool-e2e" in text, "and the owner webhook's URL")
    check("whsec_" not in console.driver.page_source, "never its secret")
    check(re.search(r"queued|retrying|given up|delivered", text), "and its delivery")
    check(not console.driver.find_elements(By.CSS_SELECTOR, "form[action$='/ack']"),
          "alerts are read-only for owners")
    console.shoot("owner-application")
    console.open(f"/console/keys/{mine}")
    check("owner-key" in console.text(), "the owner sees their key")
    console.shoot("owner-key")
    console.open(f"/console/keys/{theirs}")
    check("Not available" in console.text(), "another application's key is refused")
    session = "assetpool_console=" + console.driver.get_cookie("assetpool_console")["value"]
    response, other = http.request("GET", f"/console/keys/{theirs}", cookie=session)
    check(response.status == 403, "another application's key: 403")
    response, missing = http.request("GET", "/console/keys/key_missing", cookie=session)
    check(response.status == 403 and missing == other, "a missing key looks the same")
    console.open(f"/console/keys/{mine}")
    console.fill("reason", "compromised")
    console.submit(f"/console/keys/{mine}/revoke", confirm=True)
    check("revoked" in console.text(), "the owner revoked their key at once")
    console.sign_out()


def main():
    parser = argparse.ArgumentParser()
    for name in ("--url", "--password", "--mine", "--theirs", "--application", "--profile",
                 "--shots"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    os.makedirs(args.shots, exist_ok=True)
    http = Http(args.url)
    http_checks(http, args.password, args.theirs)
    driver = browser(args.profile)
    try:
        console = Console(driver, args.url, args.shots)
        console.password = args.password
        console.open("/console/sign-in")
        console.shoot("sign-in")
        admin_flow(console, shots_wanted=True)
        application_flow(console)
        key_edit_flow(console, args.theirs)
        owner_flow(console, http, args.mine, args.theirs, args.application)
        violations = [entry["message"] for entry in driver.get_log("browser")
                      if "Content Security Policy" in entry["message"]
                      or "Refused to" in entry["message"]]
        check(not violations, f"no CSP violation in the browser's console: {violations}")
    finally:
        driver.quit()
    print("console e2e: ok")


if __name__ == "__main__":
    main()
