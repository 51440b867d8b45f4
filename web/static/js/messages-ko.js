export const KO = {};
