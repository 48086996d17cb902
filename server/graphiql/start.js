// Starts GraphiQL against this server. Served from the binary, like every script of the page:
// the content security policy allows no other origin and no inline script.
const here = new URL("/graphql", window.location.origin);
const socket = new URL("/graphql/ws", window.location.origin);
socket.protocol = here.protocol === "https:" ? "wss:" : "ws:";
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher: GraphiQL.createFetcher({
      url: here.toString(),
      subscriptionUrl: socket.toString(),
      fetch: (url, opts = {}) => fetch(url, { ...opts, credentials: "same-origin" }),
    }),
    defaultEditorToolsVisibility: true,
  })
);
