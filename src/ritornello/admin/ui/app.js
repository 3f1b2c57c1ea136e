// The page's router: the URL hash names the view (#/invocations, #/invocations/ID, #/state,
// #/deployments, #/services, #/services/NAME, #/schedules, #/limits). Each view renders into
// <main> and returns a function that stops whatever it started (its polling); the router calls
// it before the next view.

import { forgetToken, hasToken } from "./api.js";
import { clear, h } from "./dom.js";
import { deploymentsView } from "./deployments.js";
import { invocationView } from "./invocation.js";
import { invocationsView } from "./invocations.js";
import { limitsView } from "./limits.js";
import { schedulesView } from "./schedules.js";
import { serviceView } from "./service.js";
import { servicesView } from "./services.js";
import { stateView } from "./state.js";

const main = document.getElementById("main");
let stop = () => {};

function route() {
  stop();
  const path = (location.hash.replace(/^#/, "").split("?")[0] || "/invocations").replace(/\/+$/, "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const page = parts[0] || "invocations";
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.page === page);
  }
  clear(main);
  if (page === "invocations" && parts.length > 1) stop = invocationView(main, parts[1]);
  else if (page === "invocations") stop = invocationsView(main);
  else if (page === "state") stop = stateView(main);
  else if (page === "deployments") stop = deploymentsView(main);
  else if (page === "services" && parts.length > 1) stop = serviceView(main, parts[1]);
  else if (page === "services") stop = servicesView(main);
  else if (page === "schedules") stop = schedulesView(main);
  else if (page === "limits") stop = limitsView(main);
  else {
    main.append(h("p", { class: "error" }, `No page ${path}.`));
    stop = () => {};
  }
  document.getElementById("sign-out").hidden = !hasToken();
}

document.getElementById("sign-out").addEventListener("click", () => {
  forgetToken();
  route();
});
window.addEventListener("hashchange", route);
route();
