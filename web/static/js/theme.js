// Applied before the first paint (a classic script in <head>): the theme chosen on an earlier visit.
try {
  const theme = localStorage.getItem("casvault.theme");
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
} catch {
  // storage blocked: the system's theme
}
