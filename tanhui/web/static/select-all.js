// "Select all shown" for a list of checkboxes (the review queue). Without script the box stays
// hidden and each row is ticked by hand.
document.querySelectorAll("input[data-picks]").forEach((all) => {
  const prefix = all.dataset.picks;
  const boxes = () =>
    Array.from(document.querySelectorAll(`input[type="checkbox"][name^="${prefix}"]`));
  all.hidden = false;
  all.addEventListener("change", () => boxes().forEach((box) => (box.checked = all.checked)));
});
