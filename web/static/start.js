// Starts the UI. A file of its own, not inline: the content security policy allows no inline script.
import init from "/baton_web.js";
init();
