from tests.e2e.browser import browser, page  # noqa: F401  (fixtures)
