/* placeholder: being written */
typedef int mh_placeholder_mh_conn;
