// The REST API page (/api-docs): the vendored Swagger UI (server/ui/vendor/, Apache-2.0) renders
// /api/openapi.json, read-only ("Try it out" is off: the page would send requests with the
// session cookie). Scripts and styles come from this server only, as on every page: a content
// security policy violation is recorded on the page (data-csp-violations) for the browser test.
"use strict";

const violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  violations.push(`${event.violatedDirective} ${event.blockedURI || "inline"}`);
  document.body.dataset.cspViolations = JSON.stringify(violations);
});

window.addEventListener("DOMContentLoaded", () => {
  const started = performance.now();
  const bundle = document.createElement("script");
  bundle.src = "/ui/swagger-ui-bundle.js";
  bundle.onload = () => {
    window.SwaggerUIBundle({
      url: "/api/openapi.json",
      dom_id: "#api-docs",
      deepLinking: true,
      supportedSubmitMethods: [],
      validatorUrl: null,
      onComplete: () => {
        document.body.dataset.ready = String(Math.round(started));
      },
    });
  };
  document.head.append(bundle);
});
