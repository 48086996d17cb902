//! The session's user: who is logged in and what their role lets them do (pages offer only that).

/// Who is logged in.
#[derive(Clone, PartialEq)]
pub struct Me {
    pub username: String,
    pub role: String,
}

impl Me {
    fn rank(&self) -> u8 {
        match self.role.as_str() {
            "viewer" => 0,
            "user" => 1,
            "operator" => 2,
            "admin" => 3,
            "superadmin" => 4,
            _ => 0,
        }
    }
    /// May create and edit definitions.
    pub fn rank_at_least_user(&self) -> bool {
        self.rank() >= 1
    }
    /// May force-run, terminate, modify status, freeze, run adhoc commands.
    pub fn is_operator(&self) -> bool {
        self.rank() >= 2
    }
    pub fn is_admin(&self) -> bool {
        self.rank() >= 3
    }
}
