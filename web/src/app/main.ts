// Placeholder: the app lands with issue 12.
const root = document.getElementById("app");
if (root) root.textContent = "Fechatter";
